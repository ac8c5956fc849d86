"""Sequencing: giving appended entries their index, leaf hash and tree nodes, with no gap.

The head row (the tree's size and frontier) orders every append: its row lock is held until the
appending transaction commits, so an entry whose transaction rolls back takes its index with it.
What costs is not the hashing but the round trips and the commit made while the lock is held;
three paths keep them to the fewest:

- In a caller's transaction on PostgreSQL (a prediction batch, a registration): one statement
  moves the head only if it still is what this process last wrote or read (size and frontier
  both compared, so a guess left stale by a rollback or by another process is never built on),
  and inserts the entries and nodes only if it did. One round trip instead of two, and a
  prepared statement: planning it anew each time cost as much as running it.
- Outside any transaction on PostgreSQL (a sign-in, a script): the same statement, committing on
  its own, and group commit between this process's threads: while one thread's statement is in
  flight, others queue; the first of them then writes everything queued in one statement. Each
  caller returns as soon as its entry is committed, with its own receipt.
- Otherwise (the guess was wrong, or SQLite): lock the head, read it, write.

Each entry was redacted under one version of the organisations' redaction rules
(`LogHead.rules_version`, moved under the head's lock by every rule created); it is written
only under that version, checked in the same statement or under the lock. An entry redacted
under an older version is prepared again with the current rules before it is written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.log import entry, merkle
from audit.log.models import LogEntry, LogHead, MerkleNode
from portal.platform.locks import for_update

Sequenced = tuple[int, str]  # (index, leaf hash in hex)


@dataclass(frozen=True)
class Pending:
    """An entry ready to be sequenced: every field is known but its index."""

    fields: dict[str, Any]
    created_at: datetime
    payload_json: str  # the redacted payload, canonical JSON
    salt: str
    subject_key: str
    rules_version: int = 0  # of the redaction rules it was redacted with
    # The same entry (same salt and time) redacted with the rules of another version.
    reprepare: Callable[[int], Pending] | None = None


def append(pending: list[Pending]) -> list[Sequenced]:
    """Sequences and writes the entries, in order, in the caller's transaction if there is one."""
    if connection.vendor != "postgresql":
        return _append_locked(pending)
    if connection.get_autocommit() and not connection.in_atomic_block:
        return _GROUP.append(pending)
    return _append_guessed(pending)


class _Head:
    """This process's last sight of the head. Only a guess: the database checks it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[int, merkle.Frontier] | None = None

    def get(self) -> tuple[int, merkle.Frontier] | None:
        with self._lock:
            return None if self._state is None else (self._state[0], list(self._state[1]))

    def set(self, size: int, frontier: merkle.Frontier) -> None:
        with self._lock:
            self._state = (size, list(frontier))


@dataclass
class _Slot:
    pending: list[Pending]
    woken: threading.Event = field(default_factory=threading.Event)  # written, or handed the lead
    done: bool = False
    result: list[Sequenced] | None = None
    error: BaseException | None = None


class _GroupCommit:
    """Appends outside transactions, several threads' entries per statement when they overlap.

    Flat combining: a caller queues its entries; if no statement is in flight it leads, writing
    everything queued in one statement, then hands the lead to the first caller that queued
    meanwhile (so no caller writes for others without end). Callers whose entries were written
    are woken at once, without waiting their turn behind the next statement.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False  # a leader is writing

    def append(self, pending: list[Pending]) -> list[Sequenced]:
        slot = _Slot(pending)
        with self._lock:
            self._queue.append(slot)
            leads, self._busy = not self._busy, True
        if not leads:
            slot.woken.wait()
        if not slot.done:  # it leads: nobody wrote its entries
            with self._lock:
                group, self._queue = self._queue, []
            self._write(group)  # holds this slot: it was queued and nobody else took the queue
            with self._lock:
                if self._queue:
                    self._queue[0].woken.set()  # the next caller leads
                else:
                    self._busy = False
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    @staticmethod
    def _write(group: list[_Slot]) -> None:
        try:
            done = _append_guessed([p for slot in group for p in slot.pending])
        except BaseException as exc:  # every caller of the group learns that its entry failed
            for slot in group:
                slot.error, slot.done = exc, True
                slot.woken.set()
            return
        start = 0
        for slot in group:
            slot.result, slot.done = done[start : start + len(slot.pending)], True
            slot.woken.set()
            start += len(slot.pending)


_HEAD = _Head()
_GROUP = _GroupCommit()


def _reset_after_fork() -> None:  # a forked worker must not inherit a lock held by a thread
    global _HEAD, _GROUP
    _HEAD, _GROUP = _Head(), _GroupCommit()


os.register_at_fork(after_in_child=_reset_after_fork)


def _build(
    pending: list[Pending], size: int, frontier: merkle.Frontier
) -> tuple[list[tuple[dict[str, Any], Pending, str]], list[tuple[int, int, str]], merkle.Frontier]:
    """Indexes, leaf hashes and completed nodes for `pending` appended to a tree of `size`."""
    frontier = list(frontier)
    rows: list[tuple[dict[str, Any], Pending, str]] = []
    nodes: list[tuple[int, int, str]] = []
    for offset, item in enumerate(pending):
        fields = {**item.fields, "index": size + offset}
        leaf = entry.entry_leaf_hash(fields)
        rows.append((fields, item, leaf.hex()))
        nodes.extend((level, position, h.hex()) for level, position, h in merkle.frontier_push(frontier, leaf))
    return rows, nodes, frontier


def _append_guessed(pending: list[Pending]) -> list[Sequenced]:
    guess = _HEAD.get()
    versions = {item.rules_version for item in pending}
    if guess is not None and len(versions) == 1:
        size, frontier = guess
        rows, nodes, after = _build(pending, size, frontier)
        if _write_if_head(rows, nodes, (size, frontier, versions.pop()), after):
            _HEAD.set(size + len(rows), after)
            return [(fields["index"], leaf) for fields, _, leaf in rows]
    return _append_locked(pending)


# No savepoint: inside a caller's transaction a failure here fails the caller's change too,
# which is the point.
def _append_locked(pending: list[Pending]) -> list[Sequenced]:
    with transaction.atomic(savepoint=False):
        size, frontier, rules_version = _head_locked()
        pending = [_under(item, rules_version) for item in pending]
        rows, nodes, after = _build(pending, size, frontier)
        if connection.vendor == "postgresql":
            if not _write_if_head(rows, nodes, (size, frontier, rules_version), after):
                raise RuntimeError("the audit log's head changed under its lock")
        else:
            _write_orm(rows, nodes, size + len(rows), after)
    _HEAD.set(size + len(rows), after)
    return [(fields["index"], leaf) for fields, _, leaf in rows]


def _under(item: Pending, rules_version: int) -> Pending:
    """The entry as redacted under `rules_version` (prepared again if it was under another)."""
    if item.rules_version == rules_version:
        return item
    if item.reprepare is None:
        raise RuntimeError("an audit entry redacted under other rules cannot be prepared again")
    return item.reprepare(rules_version)


def _head_locked() -> tuple[int, merkle.Frontier, int]:
    """Locks the head row (until the caller's transaction ends) and reads it."""
    with connection.cursor() as cursor:
        # SQLite has no FOR UPDATE: its IMMEDIATE transactions already hold the write lock.
        lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
        cursor.execute(f"SELECT size, frontier, rules_version FROM audit_log_loghead WHERE id = 1{lock}")  # noqa: S608
        found = cursor.fetchone()
    if found is None:
        head, _ = for_update(LogHead.objects.all()).get_or_create(pk=1)
        size, frontier, rules_version = head.size, head.frontier, head.rules_version
    else:
        size, frontier, rules_version = found
        if isinstance(frontier, str):  # SQLite hands JSON back as text
            frontier = json.loads(frontier)
    return size, [(s, bytes.fromhex(h)) for s, h in frontier], rules_version


def _frontier_json(frontier: merkle.Frontier) -> str:
    return json.dumps([[s, h.hex()] for s, h in frontier])


_ENTRY_COLUMNS = (
    "index, created_at, organization_id, actor_type, actor_id, actor_label, action, target_type, "
    "target_id, request_id, payload, payload_sha256, commitment, salt, subject_key, leaf_hash"
)  # not erased_at: NULL until an erasure
# Typed, since a VALUES list feeding INSERT ... SELECT does not take the columns' types.
_ENTRY_ROW = "(%s::bigint, %s::timestamptz, %s::bigint, " + "%s, " * 7 + "%s::jsonb, %s, %s, %s, %s, %s)"


def _write_if_head(
    rows: list[tuple[dict[str, Any], Pending, str]],
    nodes: list[tuple[int, int, str]],
    before: tuple[int, merkle.Frontier, int],
    after: merkle.Frontier,
) -> bool:
    """One statement: moves the head from `before` (size, frontier, rules version) to `after` and
    inserts the entries and nodes, all only if the head is `before`. Returns whether it was (nothing is written otherwise).

    Plain SQL rather than the ORM, on a server-binding cursor of Django's own connection (same
    transaction), so that PostgreSQL prepares it (see DB_PREPARED_STATEMENTS in settings): an
    append sits in every prediction's transaction, and planning this statement anew cost about
    as much as running it. Its shape depends only on the number of entries and nodes (one entry
    brings 0 to ~log2 n nodes, one on average), so a connection keeps few of them; several
    entries go as column arrays through unnest, one shape for any number (arrays run a third
    slower than a VALUES row for one entry). Only constant column names and placeholders are
    formatted in; every value is a parameter.
    """
    head = [before[0] + len(rows), _frontier_json(after), timezone.now(), before[0], _frontier_json(before[1]),
            before[2]]
    values = [
        (fields["index"], item.created_at, fields["org"], fields["actor_type"], fields["actor_id"],
         fields["actor_label"], fields["action"], fields["target_type"], fields["target_id"], fields["request_id"],
         item.payload_json, fields["payload_sha256"], fields["commitment"], item.salt, item.subject_key, leaf)
        for fields, item, leaf in rows
    ]
    if len(values) == 1:
        sql = _write_one_sql(len(nodes))
        params = [*head, *values[0], *(value for node in nodes for value in node)]
    else:
        sql = _WRITE_MANY
        params = [*head, *(list(column) for column in zip(*values, strict=True)),
                  [level for level, _, _ in nodes], [position for _, position, _ in nodes], [h for _, _, h in nodes]]
    import psycopg  # PostgreSQL's path only: an embedded (SQLite) deployment needs no driver for it

    connection.ensure_connection()
    # Errors as Django's (IntegrityError, OperationalError...), as from its own cursors.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    return bool(found and found[0] == 1)


_HEAD_MOVE = (
    "WITH h AS (UPDATE audit_log_loghead SET size = %s, frontier = %s::jsonb, updated_at = %s"
    " WHERE id = 1 AND size = %s AND frontier = %s::jsonb AND rules_version = %s RETURNING id)"
)


def _write_one_sql(nodes: int) -> str:
    """One entry: a VALUES row, whose shape varies only with its 0 to ~log2 n nodes."""
    sql = (
        f"{_HEAD_MOVE}, e AS (INSERT INTO audit_log_logentry ({_ENTRY_COLUMNS})"  # noqa: S608
        f" SELECT * FROM (VALUES {_ENTRY_ROW}) AS v WHERE EXISTS (SELECT 1 FROM h))"
    )
    if nodes:
        sql += (
            ", n AS (INSERT INTO audit_log_merklenode (level, position, hash)"  # noqa: S608
            f" SELECT * FROM (VALUES {', '.join(['(%s::int, %s::bigint, %s)'] * nodes)}) AS v"
            " WHERE EXISTS (SELECT 1 FROM h))"
        )
    return sql + " SELECT count(*) FROM h"  # noqa: S608


# Several entries: one column array each, so one shape whatever the numbers of entries and nodes.
_WRITE_MANY = (
    f"{_HEAD_MOVE}, e AS (INSERT INTO audit_log_logentry ({_ENTRY_COLUMNS})"  # noqa: S608
    " SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::bigint[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[]) WHERE EXISTS (SELECT 1 FROM h)),"
    " n AS (INSERT INTO audit_log_merklenode (level, position, hash)"
    " SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[]) WHERE EXISTS (SELECT 1 FROM h))"
    " SELECT count(*) FROM h"
)


def _write_orm(
    rows: list[tuple[dict[str, Any], Pending, str]], nodes: list[tuple[int, int, str]], size: int,
    frontier: merkle.Frontier,
) -> None:
    LogEntry.objects.bulk_create([
        LogEntry(index=f["index"], created_at=item.created_at, organization_id=f["org"], actor_type=f["actor_type"],
                 actor_id=f["actor_id"], actor_label=f["actor_label"], action=f["action"],
                 target_type=f["target_type"], target_id=f["target_id"], request_id=f["request_id"],
                 payload=json.loads(item.payload_json), payload_sha256=f["payload_sha256"],
                 commitment=f["commitment"], salt=item.salt, subject_key=item.subject_key, leaf_hash=leaf)
        for f, item, leaf in rows
    ])
    MerkleNode.objects.bulk_create([MerkleNode(level=lv, position=pos, hash=h) for lv, pos, h in nodes])
    LogHead.objects.filter(pk=1).update(size=size, frontier=[[s, h.hex()] for s, h in frontier],
                                        updated_at=timezone.now())
