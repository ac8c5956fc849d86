"""Evidence bundles (signed manifest + anchor entry + excerpt with proofs): the verifier's every check.

Tampering that leaves the manifest's signature broken is shown end to end in
tests/audit/exports; here the manifest is re-signed with the log's own key after each change, so
that the checks behind the signature (anchor, proofs, excerpt, consistency) are each seen to bite.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from audit.log import evidence, signing
from audit.log.exports import evidence_bundle_create, public_key_pem
from audit.log.models import LogEntry
from audit.log.services import AuditActor
from audit.log.verify import main as verify_main
from audit.log.verify import verify_bundle
from tests.audit.log.helpers import build_log

pytestmark = pytest.mark.django_db
FILES = {"report.txt": b"the report\n", "tables/a.csv": b"x,y\n1,2\n"}


def make_bundle() -> tuple[dict[str, bytes], dict[str, Any]]:
    build_log(20, checkpoint_every=6)
    excerpt = list(LogEntry.objects.filter(organization_id=1).order_by("index"))
    data, manifest = evidence_bundle_create(
        files=FILES, subject={"model": "m", "version": 1}, title="test bundle", action="bundle.generated",
        actor=AuditActor.system("tests"), organization_id=1, target_type="t.Bundle", target_id=1,
        payload={"model": "m"}, excerpt=excerpt)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}, manifest


def check(files: dict[str, bytes], key: Any = None) -> evidence.EvidenceReport:
    key = key or signing.load_public_key(public_key_pem())
    return evidence.verify_evidence(files.__getitem__, list(files), key)


def resign(files: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    """Changes the manifest and signs it again with the log's key (only a key holder could)."""
    manifest = json.loads(files["manifest.json"])
    change(manifest)
    data = evidence.manifest_bytes(manifest)
    key = signing.load_private_key(settings.AUDIT_SIGNING_KEY)
    return {**files, "manifest.json": data, "manifest.sig": evidence.signature_bytes(key, data)}


def test_a_fresh_bundle_verifies_and_records_its_file_list() -> None:
    files, manifest = make_bundle()
    report = check(files)
    assert report.ok, report.summary()
    assert report.files == len(files) - 2 and report.excerpt_entries == 13  # org 1 holds 13 of the 20 entries
    entry = LogEntry.objects.get(index=manifest["anchor"]["fields"]["index"])
    assert entry.action == "bundle.generated"
    assert entry.payload["files_sha256"] == manifest["files_sha256"] == evidence.files_sha256(manifest["files"])
    assert {f["name"] for f in manifest["files"]} == set(files) - {"manifest.json", "manifest.sig"}


@pytest.mark.parametrize(("name", "change", "kind", "where"), [
    ("anchor payload", lambda m: m["anchor"]["payload"].update(files_sha256="0" * 64), "payload_modified",
     "manifest.json"),
    ("anchor field", lambda m: m["anchor"]["fields"].update(actor_label="mallory"), "entry_modified", "manifest.json"),
    ("proof element flipped", lambda m: m["anchor"]["proof"]["path"].__setitem__(0, "0" * 64), "bad_proof",
     "manifest.json"),
    ("proof element added", lambda m: m["anchor"]["proof"]["path"].append("0" * 64), "bad_proof", "manifest.json"),
    ("proof element removed", lambda m: m["anchor"]["proof"]["path"].pop(), "bad_proof", "manifest.json"),
    ("wrong index", lambda m: m["anchor"]["fields"].update(index=m["anchor"]["fields"]["index"] - 1),
     "entry_modified", "manifest.json"),
    ("forged checkpoint", lambda m: m["anchor"]["proof"]["checkpoint"].update(tree_size=999), "bad_signature",
     "manifest.json"),
    ("consistency flipped", lambda m: m["audit_excerpt"]["consistency"].__setitem__(0, "0" * 64), "bad_proof",
     "manifest.json"),
    ("file list hash", lambda m: m.update(files_sha256="0" * 64), "anchor_mismatch", "manifest.json"),
    ("file hash", lambda m: m["files"][0].update(sha256="0" * 64), "file_modified", None),
])
def test_every_check_behind_the_signature_bites(name, change, kind, where) -> None:
    files, _ = make_bundle()
    report = check(resign(files, change))
    assert not report.ok, name
    fault = report.faults[0]
    assert fault.kind == kind, (name, report.summary())
    if where:
        assert fault.file == where


def test_an_excerpt_entry_changed_and_rehashed_is_caught_by_its_leaf() -> None:
    files, _ = make_bundle()
    lines = files["audit/excerpt.jsonl"].splitlines()
    item = json.loads(lines[2])
    item["fields"]["action"] = "thing.hidden"
    lines[2] = json.dumps(item).encode()
    changed = b"\n".join(lines) + b"\n"

    def rehash(manifest: dict[str, Any]) -> None:
        for f in manifest["files"]:
            if f["name"] == "audit/excerpt.jsonl":
                f.update(evidence.file_list({"x": changed})[0] | {"name": f["name"]})
        manifest["files_sha256"] = evidence.files_sha256(manifest["files"])

    report = check(resign({**files, "audit/excerpt.jsonl": changed}, rehash))
    # the file list no longer matches what the log recorded
    assert report.faults[0].kind in ("anchor_mismatch", "payload_modified")


def test_signed_by_another_key_or_pinned_to_another_key() -> None:
    files, _ = make_bundle()
    other = signing.load_private_key(signing.generate_private_pem())
    data = files["manifest.json"]
    forged = {**files, "manifest.sig": evidence.signature_bytes(other, data)}
    assert check(forged).faults[0].kind == "unknown_key"
    assert check(files, other.public_key()).faults[0].kind == "unknown_key"


def test_the_command_line_names_the_file(tmp_path: Path, capsys) -> None:
    files, _ = make_bundle()
    key = tmp_path / "key.pem"
    key.write_text(public_key_pem())
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data + (b"!" if name == "tables/a.csv" else b""))
    assert verify_main([str(path), "--public-key", str(key)]) == 1
    assert "file_modified in tables/a.csv" in capsys.readouterr().out
    folder = tmp_path / "unpacked"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert verify_bundle(folder, key.read_bytes()).ok


def test_no_signature_is_reusable_across_kinds() -> None:
    """A manifest signature never verifies as a checkpoint's, nor the other way round."""
    key = signing.load_private_key(settings.AUDIT_SIGNING_KEY)
    text = signing.checkpoint_text(3, "00" * 32, "2026-01-01T00:00:00.000000Z")
    document_signature = signing.sign_document(key, text)
    forged = signing.SignedCheckpoint(3, "00" * 32, "2026-01-01T00:00:00.000000Z", signing.key_id(key.public_key()),
                                      document_signature)
    assert not signing.verify(key.public_key(), forged)
    checkpoint = signing.sign(key, 3, "00" * 32, "2026-01-01T00:00:00.000000Z")
    assert not signing.verify_document(key.public_key(), text, checkpoint.signature)


def test_unsafe_file_names_are_refused() -> None:
    for name in ("../x", "/etc/passwd", "manifest.json", "a\\b", ""):
        with pytest.raises(ValueError):
            evidence.file_list({name: b""})



@pytest.mark.parametrize(("field", "value", "kind"), [
    ("action", "thing.hidden", "entry_modified"), ("payload", {"i": -1}, "payload_modified"),
])
def test_log_rows_altered_in_the_database_are_caught_in_the_excerpt(field, value, kind) -> None:
    """An excerpt made from rows someone changed in the database names the entry at fault."""
    build_log(10, checkpoint_every=5)
    excerpt = list(LogEntry.objects.filter(organization_id=1).order_by("index"))
    victim = excerpt[3]
    setattr(victim, field, value)  # as read from a tampered database
    data, _ = evidence_bundle_create(
        files=FILES, subject={}, title="t", action="bundle.generated", actor=AuditActor.system("tests"),
        organization_id=1, target_type="t.Bundle", target_id=1, payload={}, excerpt=excerpt)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        files = {name: bundle.read(name) for name in bundle.namelist()}
    report = check(files)
    assert report.faults[0].kind == kind and report.faults[0].file == "audit/excerpt.jsonl"
    assert report.faults[0].index == victim.index
