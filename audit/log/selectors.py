"""Reading the audit log: entries within an organisation, proofs, checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext

from audit.log import merkle
from audit.log.exceptions import ProofUnavailable
from audit.log.models import Checkpoint, LogEntry, LogHead, MerkleNode
from audit.log.services import checkpoint_signed


def entry_list(
    *,
    organization_id: int,
    member_user_ids: list[int] | None = None,
    actor: str = "",
    action: str = "",
    target_type: str = "",
    target_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[LogEntry]:
    """An organisation's entries, plus organisation-less ones (sign-ins) about its members."""
    scope = Q(organization_id=organization_id)
    if member_user_ids:
        ids = [str(i) for i in member_user_ids]
        scope |= Q(organization_id__isnull=True) & (
            Q(actor_type="user", actor_id__in=ids)
            | Q(target_type="accounts.User", target_id__in=ids)
        )
    entries = LogEntry.objects.filter(scope)
    if actor:
        entries = entries.filter(actor_label__icontains=actor)
    if action:
        entries = entries.filter(action__startswith=action)
    if target_type:
        entries = entries.filter(target_type=target_type)
    if target_id:
        entries = entries.filter(target_id=target_id)
    if since:
        entries = entries.filter(created_at__gte=since)
    if until:
        entries = entries.filter(created_at__lt=until)
    return entries.order_by("-index")


def entry_get(*, organization_id: int, index: int, member_user_ids: list[int] | None = None) -> LogEntry:
    found = entry_list(organization_id=organization_id, member_user_ids=member_user_ids).filter(index=index).first()
    if found is None:
        raise ProofUnavailable(gettext('No audit entry %(index)s in this organisation.') % {"index": index})
    return found


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-tree_size", "-id").first()


def log_size() -> int:
    head = LogHead.objects.filter(pk=1).first()
    return head.size if head else 0


class _Subtrees:
    """Answers MTH(D[start:end]) from stored leaves and perfect nodes, in two queries per batch.

    The proof algorithms never branch on hash values, so they run twice: once to learn which
    ranges they need, then with every piece fetched at once.
    """

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.pieces: dict[tuple[int, int], bytes] = {}

    def record(self, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return b""

    def fetch(self) -> None:
        wanted = {piece for s, e in self.ranges for piece in merkle.perfect_pieces(s, e)}
        leaves = [pos for level, pos in wanted if level == 0]
        nodes = [(level, pos) for level, pos in wanted if level > 0]
        for index, leaf in LogEntry.objects.filter(index__in=leaves).values_list("index", "leaf_hash"):
            self.pieces[(0, index)] = bytes.fromhex(leaf)
        if nodes:
            query = Q()
            for level, pos in nodes:
                query |= Q(level=level, position=pos)
            for level, pos, h in MerkleNode.objects.filter(query).values_list("level", "position", "hash"):
                self.pieces[(level, pos)] = bytes.fromhex(h)
        missing = wanted - set(self.pieces)
        if missing:
            raise ProofUnavailable(gettext('the log lacks nodes %(value)s: it is damaged') % {"value": sorted(missing)[:3]})

    def hash(self, start: int, end: int) -> bytes:
        return merkle.combine_pieces([self.pieces[p] for p in merkle.perfect_pieces(start, end)])


def inclusion_proof(*, index: int, tree_size: int) -> list[str]:
    if not 0 <= index < tree_size <= log_size():
        raise ProofUnavailable(gettext('entry %(index)s is not in a tree of size %(tree_size)s') % {"index": index, "tree_size": tree_size})
    subtrees = _Subtrees()
    merkle.inclusion_path(index, tree_size, subtrees.record)
    subtrees.fetch()
    return [h.hex() for h in merkle.inclusion_path(index, tree_size, subtrees.hash)]


def consistency_proof(*, first: int, second: int) -> list[str]:
    if not 0 < first <= second <= log_size():
        raise ProofUnavailable(gettext('no consistency proof from size %(first)s to size %(second)s') % {"first": first, "second": second})
    subtrees = _Subtrees()
    merkle.consistency_proof(first, second, subtrees.record)
    subtrees.fetch()
    return [h.hex() for h in merkle.consistency_proof(first, second, subtrees.hash)]


def inclusion_document(*, entry: LogEntry, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """A receipt's proof against a checkpoint (the latest by default), self-contained."""
    checkpoint = checkpoint or checkpoint_latest()
    if checkpoint is None or checkpoint.tree_size <= entry.index:
        raise ProofUnavailable(
            gettext('entry %(index)s is not covered by a signed checkpoint yet; checkpoints are made every AUDIT_CHECKPOINT_SECONDS, or on demand') % {"index": entry.index}
        )
    return {
        "index": entry.index,
        "leaf_hash": entry.leaf_hash,
        "tree_size": checkpoint.tree_size,
        "path": inclusion_proof(index=entry.index, tree_size=checkpoint.tree_size),
        "checkpoint": checkpoint_signed(checkpoint).to_dict(),
    }


_VERIFY_COLUMNS = (
    "index", "created_at", "organization_id", "actor_type", "actor_id", "actor_label", "action",
    "target_type", "target_id", "request_id", "payload_sha256", "commitment", "payload", "erased_at",
    "leaf_hash",
)


def entries_for_verification(*, chunk_size: int = 20_000) -> Iterator[dict[str, Any]]:
    """Every entry of the log, in order, as the verifier reads them (streamed as tuples: a
    million model instances would cost more than the verification itself)."""
    from audit.log import entry as entry_format
    from audit.log.services import _time

    rows = LogEntry.objects.order_by("index").values_list(*_VERIFY_COLUMNS).iterator(chunk_size=chunk_size)
    for (index, created_at, org, actor_type, actor_id, actor_label, action, target_type, target_id,
         request_id, payload_sha256, commitment, payload, erased_at, leaf_hash) in rows:
        yield {
            "index": index,
            "fields": {
                "v": entry_format.FORMAT_VERSION, "index": index, "time": _time(created_at), "org": org,
                "actor_type": actor_type, "actor_id": actor_id, "actor_label": actor_label,
                "action": action, "target_type": target_type, "target_id": target_id,
                "request_id": request_id, "payload_sha256": payload_sha256, "commitment": commitment,
            },
            "payload": payload,
            "erased": erased_at is not None,
            "leaf_hash": leaf_hash,
        }


def entries_for_targets(*, organization_id: int, targets: list[tuple[str, list[str]]]) -> list[LogEntry]:
    """An organisation's entries about any of `targets` ((target type, [ids]) pairs), in log order."""
    if not targets:
        return []
    about = Q()
    for target_type, ids in targets:
        about |= Q(target_type=target_type, target_id__in=ids)
    return list(LogEntry.objects.filter(Q(organization_id=organization_id) & about).order_by("index"))


def verification_latest() -> Any:
    """The latest finished verification of the whole log (None before the first)."""
    from audit.log.models import VerificationRun

    return VerificationRun.objects.exclude(finished_at=None).order_by("-started_at").first()
