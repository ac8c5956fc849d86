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
from audit.log.services import checkpoint_create, checkpoint_signed, entry_fields

README = """Steward audit log export

Verify it offline, with no database:
    python -m audit.log.verify THIS.zip --public-key steward-audit.pem

Pin the public key you obtained from the portal (/api/v1/audit/public-key) rather than the copy in
this bundle: a forger who re-signs checkpoints would also swap the key beside them.
"""


def public_key_pem() -> str:
    return signing.public_pem(signing.load_private_key(settings.AUDIT_SIGNING_KEY).public_key())


def export_lines(*, organization_id: int | None, tree_size: int) -> Any:
    rows = LogEntry.objects.filter(index__lt=tree_size).order_by("index").iterator(chunk_size=20_000)
    for row in rows:
        if organization_id is None or row.organization_id == organization_id:
            yield {
                "index": row.index,
                "fields": entry_fields(row),
                "payload": row.payload,
                "erased": row.erased_at is not None,
                "leaf_hash": row.leaf_hash,
            }
        else:
            yield {"index": row.index, "leaf_hash": row.leaf_hash}


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
