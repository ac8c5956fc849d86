"""Exports of the log that verify offline, with the standalone verifier and no database.

A bundle (zip) holds `entries.jsonl` (the organisation's entries in full, and for every other
entry only its index and leaf hash, so that the whole tree recomputes), `checkpoints.json` and
`public_key.pem`. Its size is that of a checkpoint made for the export, so every entry is covered.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from django.conf import settings

from audit.log import signing
from audit.log.models import Checkpoint, LogEntry
from audit.log.services import AuditActor, audit_record, checkpoint_create, checkpoint_signed, entry_fields

README = """Steward audit log export

Verify it offline, with no database:
    python -m audit.log.verify THIS.zip --public-key steward-audit.pem

Pin the public key you obtained from the portal (/api/v1/audit/public-key) rather than the copy in
this bundle: a forger who re-signs checkpoints would also swap the key beside them.
"""


def public_key_pem() -> str:
    return signing.public_pem(signing.load_private_key(settings.AUDIT_SIGNING_KEY).public_key())


def export_item(row: LogEntry) -> dict[str, Any]:
    """An entry as exports carry it: canonical fields, stored payload, erasure, leaf hash."""
    return {
        "index": row.index,
        "fields": entry_fields(row),
        "payload": row.payload,
        "erased": row.erased_at is not None,
        "leaf_hash": row.leaf_hash,
    }


def export_lines(*, organization_id: int | None, tree_size: int) -> Any:
    rows = LogEntry.objects.filter(index__lt=tree_size).order_by("index").iterator(chunk_size=20_000)
    for row in rows:
        if organization_id is None or row.organization_id == organization_id:
            yield export_item(row)
        else:
            yield {"index": row.index, "leaf_hash": row.leaf_hash}


def log_export(*, actor: AuditActor, organization_id: int) -> tuple[bytes, int]:
    """An organisation's log as a zip and its size (`export_bundle`), the export recorded in the log."""
    data, size = export_bundle(organization_id=organization_id)
    audit_record(action="audit_log.exported", actor=actor, organization_id=organization_id, target_type="audit.Log",
                 target_id=size, payload={"tree_size": size, "bytes": len(data)})
    return data, size


def export_bundle(*, organization_id: int | None) -> tuple[bytes, int]:
    """A zip of the log up to a fresh checkpoint; `organization_id=None` exports every entry."""
    checkpoint_create(force=False)
    latest = Checkpoint.objects.order_by("-tree_size", "-id").first()
    tree_size = latest.tree_size if latest else 0
    checkpoints = [
        checkpoint_signed(cp).to_dict()
        for cp in Checkpoint.objects.filter(tree_size__lte=tree_size).order_by("tree_size", "id")
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        with bundle.open("entries.jsonl", "w") as handle:
            for line in export_lines(organization_id=organization_id, tree_size=tree_size):
                handle.write(json.dumps(line, sort_keys=True, ensure_ascii=False).encode() + b"\n")
        bundle.writestr("checkpoints.json", json.dumps(checkpoints, indent=1))
        bundle.writestr("public_key.pem", public_key_pem())
        bundle.writestr("README.txt", README)
    return buffer.getvalue(), tree_size


EVIDENCE_README = """{title}

This bundle is evidence under a signed manifest. manifest.json lists every other file with its
SHA-256; manifest.sig signs manifest.json with the audit log's Ed25519 key; the manifest's anchor
is the audit log entry that recorded this export (its file list's hash) with an inclusion proof
against a signed checkpoint, and {excerpt} holds further log entries, each with its proof.

Verify it offline, with no database and no Django:
    python -m audit.log.verify THIS.zip --public-key steward-audit.pem

Pin the public key you obtained from the portal (/api/v1/audit/public-key), not the copy in this
bundle: whoever could alter the bundle could also swap the key beside it.
"""


def evidence_bundle_create(
    *, files: dict[str, bytes], subject: dict[str, Any], title: str, action: str, actor: AuditActor,
    organization_id: int, target_type: str, target_id: str | int, payload: dict[str, Any],
    excerpt: list[LogEntry], excerpt_name: str = "audit/excerpt.jsonl",
) -> tuple[bytes, dict[str, Any]]:
    """Signs `files` into an evidence bundle (zip) anchored to a new entry of the log.

    Records `action` with the file list's hash, makes a checkpoint that covers it, and puts in the
    manifest the entry and its inclusion proof; each `excerpt` entry goes into `excerpt_name` with
    its own path to the same checkpoint. Returns the zip and its manifest.
    """
    from django.db import transaction

    from audit.log import evidence
    from audit.log.selectors import checkpoint_latest, consistency_proof, inclusion_proof

    # The excerpt's paths lead to a checkpoint made now. The anchor is recorded afterwards (its
    # payload is the hash of the file list, excerpt included), so its checkpoint is a later one; a
    # consistency proof shows the later tree extends the earlier.
    checkpoint_create(force=False)
    base = checkpoint_latest()
    base_size = base.tree_size if base else 0
    lines = [evidence.excerpt_line(export_item(row), inclusion_proof(index=row.index, tree_size=base_size))
             for row in sorted(excerpt, key=lambda r: r.index) if row.index < base_size]
    files = {**files, excerpt_name: b"".join(lines), "public_key.pem": public_key_pem().encode(),
             "README.txt": EVIDENCE_README.format(title=title, excerpt=excerpt_name).encode()}
    listing = evidence.file_list(files)
    digest = evidence.files_sha256(listing)
    with transaction.atomic():
        receipt = audit_record(action=action, actor=actor, organization_id=organization_id, target_type=target_type,
                               target_id=target_id, payload={**payload, "files_sha256": digest, "files": len(listing)})
    checkpoint_create(force=False)
    row = LogEntry.objects.get(index=receipt.index)
    if (row.payload or {}).get("files_sha256") != digest:
        raise RuntimeError("the log did not store the bundle's hash as given (an organisation's redaction rule matched it)")
    anchor_cp = checkpoint_latest()
    if anchor_cp is None or anchor_cp.tree_size <= row.index:
        raise RuntimeError("no signed checkpoint covers the export's entry")
    manifest = {
        "format": evidence.FORMAT,
        "subject": subject,
        "files": listing,
        "files_sha256": digest,
        "anchor": {
            "fields": entry_fields(row),
            "payload": row.payload,
            "proof": {"index": row.index, "leaf_hash": row.leaf_hash, "tree_size": anchor_cp.tree_size,
                      "path": inclusion_proof(index=row.index, tree_size=anchor_cp.tree_size),
                      "checkpoint": checkpoint_signed(anchor_cp).to_dict()},
        },
        "audit_excerpt": {
            "file": excerpt_name, "entries": len(lines),
            "checkpoint": checkpoint_signed(base).to_dict() if base else None,
            "consistency": consistency_proof(first=base_size, second=anchor_cp.tree_size) if base_size else [],
        },
    }
    data = evidence.manifest_bytes(manifest)
    key = signing.load_private_key(settings.AUDIT_SIGNING_KEY)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name in sorted(files):
            bundle.writestr(name, files[name])
        bundle.writestr(evidence.MANIFEST, data)
        bundle.writestr(evidence.SIGNATURE, evidence.signature_bytes(key, data))
    return buffer.getvalue(), manifest
