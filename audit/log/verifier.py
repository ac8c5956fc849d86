"""Checks a log (entries, checkpoints, public key) and names the first fault. No Django.

Used by `manage.py audit_verify` on the database and by the standalone `python -m audit.log.verify`
on an export. An entry is either full (its canonical fields, its payload unless erased, and the
leaf hash the log stored) or a stub (index and leaf hash only: another organisation's entry in an
organisation's export). Every leaf is folded into the RFC 9162 tree, and the root at each signed
checkpoint's size must equal the checkpoint's root.

Only what a signed checkpoint covers is verified: whoever can write the database can rewrite the
entries after the last checkpoint and their hashes alike, so that tail is reported as unverified
(its size and since when), never as OK, and a log with entries and no checkpoint at all is a
fault. An erased payload must be named by a `subject.erased` entry: a blanked payload that no
erasure records is a fault. Checkpoints kept elsewhere (a witness file, or those an auditor saved
earlier) are checked with the database's: each must verify against the entries, and must still be
in the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.log import entry, merkle, signing
from audit.log.words import gettext_noop

ENTRY_MODIFIED = gettext_noop("the entry's content does not hash to its leaf hash: a field was changed")
PAYLOAD_MODIFIED = gettext_noop("the stored payload does not match the hash the entry commits to")


@dataclass
class Fault:
    kind: str  # entry_modified, payload_modified, missing_entry, duplicate_entry, index_mismatch,
    # root_mismatch, truncated, bad_signature, unknown_key, checkpoint_order, malformed, no_checkpoint,
    # erasure_unrecorded, checkpoint_missing
    index: int | None
    message: str


@dataclass
class Report:
    entries: int = 0
    full_entries: int = 0
    erased_entries: int = 0
    checkpoints_verified: int = 0
    faults: list[Fault] = field(default_factory=list)
    root: str = ""
    verified_entries: int = 0  # the entries the last signed checkpoint covers
    tail_entries: int = 0  # after it: covered by no signature yet, so unverified
    tail_since: str = ""  # the time of the first of them, where the verifier could read it
    erased_indexes: list[int] = field(default_factory=list)
    erasures_recorded: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """Everything verified: no fault, and no entry beyond the last signed checkpoint."""
        return not self.faults and self.tail_entries == 0

    @property
    def verdict(self) -> str:
        return "fault" if self.faults else ("unverified_tail" if self.tail_entries else "ok")

    @property
    def first_fault(self) -> Fault | None:
        return self.faults[0] if self.faults else None

    def summary(self) -> str:
        if self.ok:
            return gettext_noop(
                "OK: %(entries)s entries (%(full)s with content, %(erased)s erased), %(checkpoints)s signed "
                "checkpoints verified; root %(root)s") % {
                "entries": self.entries, "full": self.full_entries, "erased": self.erased_entries,
                "checkpoints": self.checkpoints_verified, "root": self.root}
        if not self.faults:
            said = {"last": self.verified_entries - 1, "checkpoints": self.checkpoints_verified,
                    "tail": self.tail_entries, "first": self.verified_entries, "end": self.entries - 1,
                    "since": self.tail_since}
            if self.tail_since:
                return gettext_noop(
                    "UNVERIFIED TAIL: entries 0..%(last)s verified against %(checkpoints)s signed checkpoints; the "
                    "%(tail)s entries after them (%(first)s..%(end)s, the oldest from %(since)s) are covered by no "
                    "signed checkpoint yet and are not verified") % said
            return gettext_noop(
                "UNVERIFIED TAIL: entries 0..%(last)s verified against %(checkpoints)s signed checkpoints; the "
                "%(tail)s entries after them (%(first)s..%(end)s) are covered by no signed checkpoint yet and are not "
                "verified") % said
        fault = self.faults[0]
        if fault.index is not None:
            return gettext_noop("FAULT %(kind)s at index %(index)s: %(message)s") % {
                "kind": fault.kind, "index": fault.index, "message": fault.message}
        return gettext_noop("FAULT %(kind)s: %(message)s") % {"kind": fault.kind, "message": fault.message}


def _payload_hash(payload: Any) -> str:
    return hashlib.sha256(entry.canonical_json(payload)).hexdigest()


def verify_log(
    entries: Iterable[dict[str, Any]],
    checkpoints: Iterable[signing.SignedCheckpoint],
    public_key: Ed25519PublicKey,
    *,
    stop_at_first: bool = True,
    kept: Iterable[signing.SignedCheckpoint] = (),
) -> Report:
    """Checks every entry (content, payload, order) and the tree against every checkpoint, the
    log's own and those `kept` elsewhere (a witness, an auditor's copies)."""
    report = Report()

    def fail(kind: str, index: int | None, message: str) -> bool:
        report.faults.append(Fault(kind, index, message))
        return stop_at_first

    checkpoints = checkpoints_beside(list(checkpoints), kept, public_key, report)
    if report.faults and stop_at_first:
        return report
    ordered = _checked_checkpoints(checkpoints, public_key, fail)
    if ordered is None:
        return report
    leaves = _entry_leaves(entries, report, fail, tail_from=ordered[-1].tree_size if ordered else 0)
    _fold(leaves, ordered, report, fail)
    if not report.faults:
        erasures_check(report, fail)
    return report


def erasures_check(report: Report, fail: Any) -> None:
    """Every erased payload is named by a `subject.erased` entry after it."""
    for index in report.erased_indexes:
        if index not in report.erasures_recorded:
            if fail("erasure_unrecorded", index, gettext_noop(
                    "the entry's payload is erased, but no erasure entry names it: a payload was blanked outside an "
                    "erasure")):
                return


def verify_leaves(
    leaves: Iterable[bytes],
    checkpoints: Iterable[signing.SignedCheckpoint],
    public_key: Ed25519PublicKey,
    report: Report,
    *,
    kept: Iterable[signing.SignedCheckpoint] = (),
) -> Report:
    """The tree part alone, over leaves whose entries were checked elsewhere (in parallel)."""

    def fail(kind: str, index: int | None, message: str) -> bool:
        report.faults.append(Fault(kind, index, message))
        return True

    checkpoints = checkpoints_beside(list(checkpoints), kept, public_key, report)
    if report.faults:
        return report
    ordered = _checked_checkpoints(checkpoints, public_key, fail)
    if ordered is not None and not report.faults:
        _fold(iter(leaves), ordered, report, fail)
    return report


def _checked_checkpoints(checkpoints: Iterable[signing.SignedCheckpoint], public_key: Ed25519PublicKey,
                         fail: Any) -> list[signing.SignedCheckpoint] | None:
    expected_key = signing.key_id(public_key)

    ordered: list[signing.SignedCheckpoint] = []
    last_size = -1
    for cp in checkpoints:
        if cp.key_id != expected_key:
            if fail("unknown_key", None, gettext_noop(
                    "checkpoint of size %(size)s is signed by key %(key)s, not by the log's key %(expected)s") % {
                    "size": cp.tree_size, "key": cp.key_id, "expected": expected_key}):
                return None
            continue
        if not signing.verify(public_key, cp):
            if fail("bad_signature", None, gettext_noop(
                    "checkpoint of size %(size)s (%(time)s) has a signature that does not verify: forged or "
                    "altered") % {"size": cp.tree_size, "time": cp.time}):
                return None
            continue
        if cp.tree_size < last_size:
            if fail("checkpoint_order", None, gettext_noop(
                    "checkpoint of size %(size)s follows one of size %(previous)s: a log never shrinks") % {
                    "size": cp.tree_size, "previous": last_size}):
                return None
        last_size = max(last_size, cp.tree_size)
        ordered.append(cp)
    ordered.sort(key=lambda c: c.tree_size)
    return ordered


def _entry_leaves(entries: Iterable[dict[str, Any]], report: Report, fail: Any, *,
                  tail_from: int = 0) -> Iterator[bytes]:
    """Checks each entry and yields its leaf hash; stops at the first fault. Notes erased entries,
    the erasures recorded, and the time of the first entry at `tail_from` (the tail's first)."""
    position = 0
    for item in entries:
        index = item.get("index")
        if not isinstance(index, int):
            if fail("malformed", position, gettext_noop("an entry has no integer index")):
                return
            continue
        if index != position:
            if index < position:
                kind, why = "duplicate_entry", gettext_noop(
                    "index %(index)s appears again after %(previous)s (deleted, inserted or reordered entries)") % {
                    "index": index, "previous": position - 1}
            else:
                kind, why = "missing_entry", gettext_noop(
                    "entries %(first)s..%(last)s are missing (deleted, inserted or reordered entries)") % {
                    "first": position, "last": index - 1}
            if fail(kind, position, why):
                return
        fields = item.get("fields")
        stored = item.get("leaf_hash")
        if fields is not None:
            report.full_entries += 1
            try:
                leaf = entry.entry_leaf_hash(fields)
            except (ValueError, TypeError) as exc:
                leaf = b""
                if fail("malformed", index, gettext_noop("entry cannot be encoded: %(error)s") % {"error": exc}):
                    return
            if fields.get("index") != index:
                if fail("index_mismatch", index, gettext_noop(
                        "entry at position %(index)s says it is %(claimed)s: moved or inserted") % {
                        "index": index, "claimed": fields.get("index")}):
                    return
            if stored is not None and stored != leaf.hex():
                if fail("entry_modified", index, ENTRY_MODIFIED):
                    return
            if index == tail_from:
                report.tail_since = str(fields.get("time", ""))
            if item.get("erased"):
                report.erased_entries += 1
                report.erased_indexes.append(index)
            elif _payload_hash(item.get("payload")) != fields.get("payload_sha256"):
                if fail("payload_modified", index, PAYLOAD_MODIFIED):
                    return
            elif fields.get("action") == "subject.erased" and isinstance(item.get("payload"), dict):
                named = item["payload"].get("entries") or []
                report.erasures_recorded.update(i for i in named if isinstance(i, int) and i < index)
        else:
            try:
                leaf = bytes.fromhex(str(stored))
                if len(leaf) != 32:
                    raise ValueError
            except ValueError:
                leaf = b""
                if fail("malformed", index, gettext_noop("a stub entry has no valid leaf hash")):
                    return
        position += 1
        yield leaf


def _fold(leaves: Iterator[bytes], ordered: list[signing.SignedCheckpoint], report: Report, fail: Any) -> None:
    """Folds the leaves into the tree and compares the root at each checkpoint's size."""
    report.checkpoints_verified = len(ordered)
    pending = iter(ordered)
    next_cp = next(pending, None)
    while next_cp is not None and next_cp.tree_size == 0:
        next_cp = next(pending, None)
    last_checked_size = 0
    frontier: merkle.Frontier = []
    position = 0
    for leaf in leaves:
        merkle.frontier_push(frontier, leaf)
        position += 1
        while next_cp is not None and next_cp.tree_size == position:
            root = merkle.frontier_root(frontier).hex()
            if root != next_cp.root_hash:
                if fail("root_mismatch", last_checked_size, gettext_noop(
                        "the entries do not hash to the root signed at size %(size)s (%(time)s): an entry in "
                        "%(first)s..%(last)s was changed, added or removed") % {
                        "size": next_cp.tree_size, "time": next_cp.time, "first": last_checked_size,
                        "last": position - 1}):
                    return
            last_checked_size = position
            next_cp = next(pending, None)
    report.entries = max(report.entries, position)
    if report.faults:
        return
    if next_cp is not None:
        fail("truncated", position, gettext_noop(
            "a checkpoint signs %(signed)s entries but the log has %(entries)s: the log was truncated") % {
            "signed": next_cp.tree_size, "entries": position})
        return
    if position and not ordered:
        fail("no_checkpoint", None, gettext_noop(
            "the log has %(entries)s entries and no signed checkpoint: nothing in it can be verified (checkpoints "
            "deleted, or never made)") % {"entries": position})
        return
    report.verified_entries = last_checked_size
    report.tail_entries = position - last_checked_size
    report.root = merkle.frontier_root(frontier).hex()


def checkpoints_beside(stored: list[signing.SignedCheckpoint], kept: Iterable[signing.SignedCheckpoint],
                      public_key: Ed25519PublicKey, report: Report) -> list[signing.SignedCheckpoint]:
    """The stored checkpoints and those kept elsewhere (a witness, an auditor's copies), as one list;
    a validly signed one kept elsewhere but missing from the store is a fault: checkpoints were removed."""
    known = {(c.tree_size, c.root_hash, c.signature) for c in stored}
    merged = list(stored)
    for cp in kept:
        if (cp.tree_size, cp.root_hash, cp.signature) in known:
            continue
        known.add((cp.tree_size, cp.root_hash, cp.signature))
        merged.append(cp)
        if signing.verify(public_key, cp) and not report.faults:
            report.faults.append(Fault("checkpoint_missing", None, gettext_noop(
                "the checkpoint of size %(size)s (%(time)s) kept outside the database is missing from it: checkpoints "
                "were deleted") % {"size": cp.tree_size, "time": cp.time}))
    return merged


def checkpoints_from_dicts(items: Iterable[dict[str, Any]]) -> Iterator[signing.SignedCheckpoint]:
    for item in items:
        yield signing.SignedCheckpoint(
            tree_size=int(item["tree_size"]),
            root_hash=str(item["root_hash"]),
            time=str(item["time"]),
            key_id=str(item["key_id"]),
            signature=str(item["signature"]),
        )


def verify_inclusion_document(document: dict[str, Any], public_key: Ed25519PublicKey) -> Fault | None:
    """Checks a receipt's inclusion proof: the checkpoint's signature, then the path to its root.

    The tree size and root come from the signed checkpoint, never from the claim beside it.
    """
    try:
        cp = next(checkpoints_from_dicts([document["checkpoint"]]))
        index = int(document["index"])
        leaf = bytes.fromhex(document["leaf_hash"])
        path = [bytes.fromhex(h) for h in document["path"]]
    except (KeyError, ValueError, TypeError) as exc:
        return Fault("malformed", None, gettext_noop("not an inclusion proof: %(error)s") % {"error": exc})
    if not signing.verify(public_key, cp):
        return Fault("bad_signature", None, gettext_noop("the proof's checkpoint is not signed by the log's key"))
    if document.get("tree_size", cp.tree_size) != cp.tree_size:
        return Fault("index_mismatch", index, gettext_noop("the proof claims a tree size its checkpoint does not sign"))
    if not merkle.verify_inclusion(index, cp.tree_size, leaf, path, bytes.fromhex(cp.root_hash)):
        return Fault("bad_proof", index, gettext_noop("the path does not lead from the leaf to the signed root"))
    return None
