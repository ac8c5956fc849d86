"""Writing to the audit log. `audit_record` is the only way in (STYLE.md C6)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log import entry, merkle, redaction, rulebook, sequencer
from audit.log.context import current_request_id
from audit.log.exceptions import InvalidAction, InvalidRedactionRule
from audit.log.models import (
    Checkpoint,
    LogEntry,
    LogHead,
    RedactionRule,
    VerificationRun,
)
from portal.platform.exceptions import NotFound
from portal.platform.locks import for_update

ACTION = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
logger = logging.getLogger("steward.audit")


@dataclass(frozen=True)
class AuditActor:
    """Who did it: a user, an API token (on behalf of a user), the system, or nobody known."""

    type: str  # "user" | "token" | "system" | "anonymous"
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "steward") -> AuditActor:
        return cls(type="system", label=label)


@dataclass(frozen=True)
class Receipt:
    """What a caller gets back: enough to ask for an inclusion proof later."""

    index: int
    leaf_hash: str
    salt: str


def subject_key(subject: str) -> str:
    """A keyed hash of a data subject's identifier, to find their entries for erasure.

    Keyed with the portal's secret, so the log does not hold a guessable hash of an identifier.
    """
    return hmac.new(
        settings.SECRET_KEY.encode(), subject.strip().lower().encode(), hashlib.sha256
    ).hexdigest()


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditRecord:
    """One entry to append (see `audit_record` for the meaning of each field)."""

    action: str
    actor: AuditActor
    organization_id: int | None
    target_type: str = ""
    target_id: str | int = ""
    payload: dict[str, Any] | None = None
    subject: str | None = None
    request_id: str | None = None


def audit_record(
    *,
    action: str,
    actor: AuditActor,
    organization_id: int | None,
    target_type: str = "",
    target_id: str | int = "",
    payload: dict[str, Any] | None = None,
    subject: str | None = None,
    request_id: str | None = None,
) -> Receipt:
    """Appends one entry to the log, in the caller's transaction.

    The head row's lock is held until the caller's transaction commits, which is what makes the
    sequence gap-free: an entry whose business change rolls back takes its index with it.

    Args:
        action: `<entity>.<past-tense verb>`, e.g. `token.created`.
        payload: JSON details; redacted before storage, committed to (salted) before redaction.
        subject: the data subject the payload is about, so that it can be erased later.
    Raises:
        InvalidAction: the action is not of the dotted form.
    """
    record = AuditRecord(action, actor, organization_id, target_type, target_id, payload, subject, request_id)
    return audit_record_many([record])[0]


def audit_record_many(records: list[AuditRecord]) -> list[Receipt]:
    """Appends several entries under one lock of the head, in the caller's transaction.

    A worker that finishes a batch of predictions logs them together: one lock, one insert of the
    entries, one of the tree nodes, one update of the head, whatever the batch's size.
    """
    for record in records:
        if not ACTION.match(record.action):
            raise InvalidAction(gettext('audit action %(action)r is not of the form entity.verb') % {"action": record.action})
    return _append(records)


def _append(records: list[AuditRecord]) -> list[Receipt]:
    """Redacts and commits to each payload, then hands the entries to the sequencer."""
    now = timezone.now()
    bound_request_id = current_request_id.get()
    version = rulebook.book().version()
    pending = [_prepare(record, version, now, bound_request_id, secrets.token_bytes(16)) for record in records]
    return [Receipt(index=index, leaf_hash=leaf, salt=p.salt)
            for p, (index, leaf) in zip(pending, sequencer.append(pending), strict=True)]


def _prepare(
    record: AuditRecord, rules_version: int, now: datetime, bound_request_id: str, salt: bytes
) -> sequencer.Pending:
    """The entry for `record`, redacted with the rules of `rules_version`; the salt and the
    commitment to the raw payload do not depend on the rules."""
    raw = record.payload or {}
    redacted = redaction.redact(raw, rulebook.book().rules(rules_version, record.organization_id))
    stamp = _time(now)
    fields: dict[str, Any] = {
        "v": entry.FORMAT_VERSION,
        "index": None,  # given by the sequencer
        "time": stamp,
        "org": record.organization_id,
        "actor_type": record.actor.type,
        "actor_id": record.actor.id,
        "actor_label": record.actor.label[:150],
        "action": record.action,
        "target_type": record.target_type,
        "target_id": str(record.target_id),
        "request_id": record.request_id if record.request_id is not None else bound_request_id,
        "payload_sha256": entry.payload_sha256(redacted),
        "commitment": entry.commitment(salt, raw),
    }
    return sequencer.Pending(
        fields=fields, created_at=now, payload_json=entry.canonical_json(redacted).decode(), salt=salt.hex(),
        subject_key=subject_key(record.subject) if record.subject else "", rules_version=rules_version,
        reprepare=lambda version: _prepare(record, version, now, bound_request_id, salt),
    )


def entry_fields(row: LogEntry) -> dict[str, Any]:
    """The canonical fields of a stored entry, as its leaf hash commits to them."""
    return {
        "v": entry.FORMAT_VERSION,
        "index": row.index,
        "time": _time(row.created_at),
        "org": row.organization_id,
        "actor_type": row.actor_type,
        "actor_id": row.actor_id,
        "actor_label": row.actor_label,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "request_id": row.request_id,
        "payload_sha256": row.payload_sha256,
        "commitment": row.commitment,
    }


def redaction_rule_create(*, actor: AuditActor, organization_id: int, label: str, pattern: str) -> RedactionRule:
    """Adds an organisation's pattern to the redaction of everything appended after it, audited.

    Raises:
        InvalidRedactionRule (400): a pattern that is not a linear-time regular expression, or
            matches empty text; a label that is not 1-32 capital letters, digits or underscores.
    """
    try:
        redaction.compile_rule(pattern)
    except ValueError as exc:
        raise InvalidRedactionRule(gettext('%(upper)s%(value)s.') % {"upper": str(exc)[:1].upper(), "value": str(exc)[1:]}, details={"pattern": [str(exc)]}) from None
    if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,31}", label):
        reason = "a label is 1-32 capital letters, digits or underscores, e.g. PATIENT_ID"
        raise InvalidRedactionRule(gettext('%(upper)s%(value)s.') % {"upper": reason[:1].upper(), "value": reason[1:]}, details={"label": [reason]})
    with transaction.atomic():
        rule = RedactionRule.objects.create(organization_id=organization_id, label=label, pattern=pattern)
        # Under the head's lock, as appends are: every append written after this commits is
        # redacted with the new rule, in every process (see audit/log/rulebook.py).
        _move_rules_version()
        rulebook.book().forget()  # this process learns it at once (others at their next append), its own record first
        audit_record(action="redaction_rule.created", actor=actor, organization_id=organization_id,
                     target_type="audit.RedactionRule", target_id=rule.pk,
                     payload={"label": rule.label, "pattern": rule.pattern})
    rulebook.book().forget()  # a rolled-back rule is forgotten too
    return rule


def _move_rules_version() -> None:
    """Gives the rules a new version under the head's lock. A random one, never the old one plus one: a
    version a rolled-back transaction used (and a process may have read its rules under) is never given to
    other rules later, so no process takes rules it cached from a rollback for committed ones."""
    for_update(LogHead.objects.all()).get_or_create(pk=1)
    LogHead.objects.filter(pk=1).update(rules_version=secrets.randbits(62))


def redaction_rule_delete(*, actor: AuditActor, organization_id: int, rule_id: int) -> None:
    """Removes an organisation's pattern: entries appended after this are no longer redacted by it
    (those already stored stay as they were). Audited.

    Raises:
        NotFound (404): no such rule in this organisation.
    """
    with transaction.atomic():
        rule = for_update(RedactionRule.objects.filter(pk=rule_id, organization_id=organization_id)).first()
        if rule is None:
            raise NotFound(gettext('No such redaction rule in this organisation.'))
        payload = {"label": rule.label, "pattern": rule.pattern}
        rule.delete()
        _move_rules_version()
        rulebook.book().forget()
        audit_record(action="redaction_rule.deleted", actor=actor, organization_id=organization_id,
                     target_type="audit.RedactionRule", target_id=rule_id, payload=payload)
    rulebook.book().forget()


def redacted_for(*, organization_id: int, value: Any) -> Any:
    """`value` (JSON) as the log would store it: the built-in redaction and the organisation's rules. For
    copies kept beside the log (a completion's prompt and answer), so that both hold the same text."""
    rules = rulebook.book().rules(rulebook.book().version(), organization_id)
    return redaction.redact(value, rules)


def redaction_preview(*, organization_id: int, text: str, label: str = "", pattern: str = "") -> str:
    """`text` as the log would store it: the built-in redaction and the organisation's rules, and a
    candidate rule (`label`, `pattern`) when given. Nothing is stored.

    Raises:
        InvalidRedactionRule (400): a candidate pattern that cannot be run.
    """
    rules = list(rulebook.book().rules(rulebook.book().version(), organization_id))
    if pattern:
        try:
            rules.append((label or "CANDIDATE", redaction.compile_rule(pattern)))
        except ValueError as exc:
            raise InvalidRedactionRule(gettext('%(upper)s%(value)s.') % {"upper": str(exc)[:1].upper(), "value": str(exc)[1:]}, details={"pattern": [str(exc)]}) from None
    return redaction.redact_text(text, rules)


def _signing_key():  # type: ignore[no-untyped-def]
    from audit.log import signing

    return signing.load_private_key(settings.AUDIT_SIGNING_KEY)


@transaction.atomic
def checkpoint_create(*, force: bool = False) -> Checkpoint | None:
    """Signs the current size and root of the log (a signed tree head).

    Holds the head's lock while it reads, so the root is that of exactly `size` entries.
    Returns None when nothing was appended since the last checkpoint (unless `force`).
    """
    from audit.log import signing

    head, _ = for_update(LogHead.objects.all()).get_or_create(pk=1)
    last = Checkpoint.objects.order_by("-tree_size", "-id").first()
    if not force and last is not None and last.tree_size == head.size:
        return None
    frontier = [(size, bytes.fromhex(h)) for size, h in head.frontier]
    root = merkle.frontier_root(frontier).hex()
    now = timezone.now()
    signed = signing.sign(_signing_key(), head.size, root, _time(now))
    checkpoint = Checkpoint.objects.create(
        tree_size=signed.tree_size,
        root_hash=signed.root_hash,
        created_at=now,
        key_id=signed.key_id,
        signature=signed.signature,
    )
    if settings.AUDIT_WITNESS_FILE:
        transaction.on_commit(lambda: _witness(signed))
    return checkpoint


def _witness(signed: Any) -> None:
    from pathlib import Path

    from audit.log.witness import witness_append

    try:
        witness_append(Path(settings.AUDIT_WITNESS_FILE), signed)
    except OSError:
        logger.exception("checkpoint of size %s could not be written to the witness %s", signed.tree_size,
                         settings.AUDIT_WITNESS_FILE)


def checkpoint_signed(checkpoint: Checkpoint) -> Any:
    from audit.log import signing

    return signing.SignedCheckpoint(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        time=_time(checkpoint.created_at),
        key_id=checkpoint.key_id,
        signature=checkpoint.signature,
    )


@transaction.atomic
def audit_erase_subject(
    *, subject: str, organization_id: int, actor: AuditActor
) -> tuple[Receipt, list[int]]:
    """Erases (GDPR Art. 17) the stored payloads about a data subject in one organisation.

    The payload and its salt are blanked; the entry's fields, payload hash, commitment and leaf
    hash stay, so the log still verifies. The erasure itself is logged with the indexes it
    blanked (not the subject's identifier).
    """
    key = subject_key(subject)
    rows = for_update(LogEntry.objects.filter(
        organization_id=organization_id, subject_key=key, erased_at__isnull=True
    ))
    indexes = list(rows.values_list("index", flat=True))
    rows.update(payload=None, salt="", erased_at=timezone.now())
    receipt = audit_record(
        action="subject.erased",
        actor=actor,
        organization_id=organization_id,
        target_type="audit.Subject",
        target_id=key[:16],
        payload={"entries": indexes, "count": len(indexes)},
    )
    return receipt, indexes


# Below this many entries, starting processes costs more than it saves.
PARALLEL_VERIFY_FROM = 50_000


def log_verify(*, known: list[Any] | None = None) -> VerificationRun:
    """Verifies the whole log against every checkpoint: the database's, the witness's
    (AUDIT_WITNESS_FILE) and `known` ones an auditor saved; stores and returns the outcome."""
    import time
    from pathlib import Path

    from django.db import connection

    from audit.log import signing, verifier
    from audit.log.selectors import entries_for_verification
    from audit.log.witness import checkpoints_read

    started = time.perf_counter()
    run = VerificationRun.objects.create(started_at=timezone.now())
    key = signing.load_private_key(settings.AUDIT_SIGNING_KEY).public_key()
    checkpoints = [checkpoint_signed(cp) for cp in Checkpoint.objects.order_by("tree_size", "id")]
    kept = list(known or [])
    witness = Path(settings.AUDIT_WITNESS_FILE) if settings.AUDIT_WITNESS_FILE else None
    if witness is not None and witness.is_file():
        kept += list(checkpoints_read(witness))
    size = LogEntry.objects.count()
    if connection.vendor == "postgresql" and size >= PARALLEL_VERIFY_FROM:
        from audit.log.parallel_verify import verify_parallel

        report = verify_parallel(size, checkpoints, key, kept=kept)
    else:
        report = verifier.verify_log(entries_for_verification(), checkpoints, key, kept=kept)
    fault = report.first_fault
    run.finished_at = timezone.now()
    run.ok = report.ok
    run.entries = report.entries
    run.checkpoints = report.checkpoints_verified
    run.fault_kind = fault.kind if fault else ("unverified_tail" if report.tail_entries else "")
    run.fault_index = fault.index if fault else (report.verified_entries if report.tail_entries else None)
    run.summary = report.summary()
    run.seconds = round(time.perf_counter() - started, 3)
    run.save()
    return run
