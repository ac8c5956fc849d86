"""Evidence bundles: files under a signed manifest, anchored to an entry of the log. No Django.

A bundle (a zip, or its unpacked folder) holds its files and two more:

- `manifest.json`: every other file's name, size and SHA-256, the SHA-256 of that list
  (`files_sha256`), and the *anchor*: the log entry that recorded the bundle (its canonical fields
  and payload, whose `files_sha256` must be the manifest's) with its inclusion proof against a
  signed checkpoint. It may name an *excerpt* file of further entries, each with its own path to
  the same checkpoint.
- `manifest.sig`: an Ed25519 signature over manifest.json's exact bytes, by the log's key (over a
  prefix of its own, so that it can never pass for a checkpoint's signature).

Checking one (`verify_evidence`, or `python -m audit.log.verify BUNDLE --public-key KEY`) proves,
with the public key alone: no file was changed, added or removed since signing (and which one was);
the log recorded this bundle's exact file list, at an index under a root the log signed; and each
excerpt entry is in that same tree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.log import entry, merkle, signing

FORMAT = "steward.evidence/v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


def file_list(files: dict[str, bytes]) -> list[dict[str, Any]]:
    """The manifest's description of the files: name, bytes, SHA-256, sorted by name."""
    for name in files:
        _check_name(name)
    return [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())]


def files_sha256(listing: list[dict[str, Any]]) -> str:
    """What the log records of a bundle: one hash over its file list."""
    return hashlib.sha256(entry.canonical_json(listing)).hexdigest()


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def signature_bytes(private_key: Ed25519PrivateKey, manifest_data: bytes) -> bytes:
    body = {"key_id": signing.key_id(private_key.public_key()),
            "signature": signing.sign_document(private_key, manifest_data)}
    return json.dumps(body, indent=1).encode() + b"\n"


def excerpt_line(item: dict[str, Any], path: list[str]) -> bytes:
    """One excerpt entry (as the log exports it) with its inclusion path, as a JSON line."""
    return json.dumps({**item, "path": path}, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def _check_name(name: str) -> None:
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or name in (MANIFEST, SIGNATURE):
        raise ValueError(f"{name!r} cannot be a file of a bundle")


# ---------------------------------------------------------------- checking

@dataclass
class EvidenceFault:
    kind: str  # file_modified, file_missing, file_unexpected, bad_signature, unknown_key, malformed,
    # anchor_mismatch, entry_modified, payload_modified, bad_proof
    file: str
    message: str
    index: int | None = None


@dataclass
class EvidenceReport:
    files: int = 0
    excerpt_entries: int = 0
    anchor_index: int | None = None
    tree_size: int | None = None
    checkpoint_time: str = ""
    subject: dict[str, Any] = field(default_factory=dict)
    faults: list[EvidenceFault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def verdict(self) -> str:
        return "ok" if self.ok else "fault"

    def summary(self) -> str:
        if not self.ok:
            fault = self.faults[0]
            where = f" (entry {fault.index})" if fault.index is not None else ""
            return f"FAULT {fault.kind} in {fault.file}{where}: {fault.message}"
        about = ", ".join(f"{k} {v}" for k, v in self.subject.items())
        return (f"OK: evidence bundle ({about}): {self.files} files match the signed manifest; the export "
                f"is log entry {self.anchor_index}, included in the signed checkpoint of size {self.tree_size} "
                f"({self.checkpoint_time}); {self.excerpt_entries} audit entries of the excerpt verified "
                "against a signed checkpoint that this one extends")


def verify_evidence(read: Callable[[str], bytes], names: list[str], public_key: Ed25519PublicKey) -> EvidenceReport:
    """Checks a bundle given a reader of its files and the names it holds; names the first bad file."""
    report = EvidenceReport()

    def fail(kind: str, name: str, message: str, index: int | None = None) -> EvidenceReport:
        report.faults.append(EvidenceFault(kind, name, message, index))
        return report

    present = set(names)
    for required in (MANIFEST, SIGNATURE):
        if required not in present:
            return fail("file_missing", required, "the bundle has no signed manifest")
    manifest_data = read(MANIFEST)
    try:
        sig = json.loads(read(SIGNATURE))
        signature, signer = str(sig["signature"]), str(sig["key_id"])
    except (ValueError, KeyError, TypeError):
        return fail("malformed", SIGNATURE, "not a signature document")
    if signer != signing.key_id(public_key):
        return fail("unknown_key", SIGNATURE, f"the manifest is signed by key {signer}, not by the log's key "
                    f"{signing.key_id(public_key)}")
    if not signing.verify_document(public_key, manifest_data, signature):
        return fail("bad_signature", MANIFEST, "the manifest does not match its signature: it was changed "
                    "after signing, or signed by someone else")
    try:
        manifest = json.loads(manifest_data)
        listing = manifest["files"]
        anchor = manifest["anchor"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"unknown format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        return fail("malformed", MANIFEST, f"not an evidence manifest: {exc}")
    report.subject = dict(manifest.get("subject") or {})

    # 1. every file as signed, and nothing else
    listed = set()
    for item in listing:
        name = str(item.get("name"))
        listed.add(name)
        if name not in present:
            return fail("file_missing", name, "a file the manifest lists is not in the bundle (removed)")
        data = read(name)
        if len(data) != item.get("bytes") or hashlib.sha256(data).hexdigest() != item.get("sha256"):
            return fail("file_modified", name, "the file does not match the SHA-256 in the signed manifest "
                        "(changed after the export)")
        report.files += 1
    for name in sorted(present - listed - {MANIFEST, SIGNATURE}):
        return fail("file_unexpected", name, "the bundle holds a file the signed manifest does not list (added)")
    digest = files_sha256(listing)
    if manifest.get("files_sha256") != digest:
        return fail("anchor_mismatch", MANIFEST, "the manifest's files_sha256 is not the hash of its file list")

    # 2. the log recorded this file list, under a signed root
    try:
        fields, payload, proof = anchor["fields"], anchor["payload"], anchor["proof"]
        cp = signing.SignedCheckpoint(**{k: proof["checkpoint"][k] for k in
                                         ("tree_size", "root_hash", "time", "key_id", "signature")})
        index = int(fields["index"])
        path = [bytes.fromhex(h) for h in proof["path"]]
        leaf = entry.entry_leaf_hash(fields)
    except (ValueError, KeyError, TypeError) as exc:
        return fail("malformed", MANIFEST, f"the anchor is not a log entry with a proof: {exc}")
    report.anchor_index, report.tree_size, report.checkpoint_time = index, cp.tree_size, cp.time
    if not signing.verify(public_key, cp):
        return fail("bad_signature", MANIFEST, "the anchor's checkpoint is not signed by the log's key", index)
    if hashlib.sha256(entry.canonical_json(payload)).hexdigest() != fields.get("payload_sha256"):
        return fail("payload_modified", MANIFEST, "the anchor's payload does not match its entry's hash", index)
    if not isinstance(payload, dict) or payload.get("files_sha256") != digest:
        return fail("anchor_mismatch", MANIFEST, "the log entry records another file list than this bundle's", index)
    if proof.get("leaf_hash") not in (None, leaf.hex()) or int(proof.get("index", index)) != index:
        return fail("entry_modified", MANIFEST, "the anchor entry does not hash to the leaf its proof is for", index)
    root = bytes.fromhex(cp.root_hash)
    if not merkle.verify_inclusion(index, cp.tree_size, leaf, path, root):
        return fail("bad_proof", MANIFEST, "the anchor's inclusion proof does not lead to the signed root", index)

    # 3. the excerpt: every entry in a signed tree that the anchor's tree extends
    excerpt = manifest.get("audit_excerpt") or {}
    excerpt_name = excerpt.get("file")
    if excerpt_name:
        count = 0
        lines = [line for line in read(excerpt_name).splitlines() if line.strip()]
        if lines:
            try:
                base = signing.SignedCheckpoint(**{k: excerpt["checkpoint"][k] for k in
                                                   ("tree_size", "root_hash", "time", "key_id", "signature")})
                consistency = [bytes.fromhex(h) for h in excerpt["consistency"]]
            except (ValueError, KeyError, TypeError) as exc:
                return fail("malformed", MANIFEST, f"the excerpt has no checkpoint and consistency proof: {exc}")
            if not signing.verify(public_key, base):
                return fail("bad_signature", MANIFEST, "the excerpt's checkpoint is not signed by the log's key")
            base_root = bytes.fromhex(base.root_hash)
            if not merkle.verify_consistency(base.tree_size, cp.tree_size, base_root, root, consistency):
                return fail("bad_proof", MANIFEST, f"the tree of size {cp.tree_size} does not extend the excerpt's "
                            f"tree of size {base.tree_size} (consistency proof fails)")
        for line in lines:
            try:
                item = json.loads(line)
                at = int(item["index"])
                leaf = entry.entry_leaf_hash(item["fields"])
                steps = [bytes.fromhex(h) for h in item["path"]]
            except (ValueError, KeyError, TypeError) as exc:
                return fail("malformed", excerpt_name, f"line {count + 1} is not an entry with a path: {exc}")
            if item["fields"].get("index") != at or item.get("leaf_hash") != leaf.hex():
                return fail("entry_modified", excerpt_name, "the entry does not hash to its leaf hash", at)
            if not item.get("erased") and hashlib.sha256(
                    entry.canonical_json(item.get("payload"))).hexdigest() != item["fields"].get("payload_sha256"):
                return fail("payload_modified", excerpt_name, "the payload does not match the hash its entry commits to", at)
            if not merkle.verify_inclusion(at, base.tree_size, leaf, steps, base_root):
                return fail("bad_proof", excerpt_name, "the entry's path does not lead to the signed root", at)
            count += 1
        if count != excerpt.get("entries", count):
            return fail("malformed", excerpt_name, f"the manifest announces {excerpt.get('entries')} entries, the file has {count}")
        report.excerpt_entries = count
    return report
