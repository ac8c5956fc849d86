"""Verification of a large log on PostgreSQL, its entries checked by several processes at once.

Each process reads one range of indexes with its own connection (the time formatted by the
database, the payload as text), recomputes every leaf hash and payload hash, and hands back the
leaves; the parent folds them into the tree and checks every signed checkpoint. A million entries
take seconds, not a minute.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson

from audit.log import entry as entry_format
from audit.log.verifier import ENTRY_MODIFIED, PAYLOAD_MODIFIED
from audit.log.words import gettext_noop

SQL = """
SELECT index, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       organization_id, actor_type, actor_id, actor_label, action, target_type, target_id,
       request_id, payload_sha256, commitment, payload::text, erased_at IS NOT NULL, leaf_hash
FROM audit_log_logentry WHERE index >= %s AND index < %s ORDER BY index
"""


def _init(database_name: str) -> None:
    import django
    from django.conf import settings

    django.setup()
    # The parent's database, whatever the settings say (a test run renames it).
    settings.DATABASES["default"]["NAME"] = database_name


def check_range(start: int, end: int) -> tuple[bytes, tuple[str, int, str] | None, int, int]:
    """Leaves of [start, end) concatenated, the first fault, entries seen, erased entries."""
    from django.db import connection, transaction

    leaves = bytearray()
    erased = 0
    position = start
    sha256, dumps, loads, sort = hashlib.sha256, orjson.dumps, orjson.loads, orjson.OPT_SORT_KEYS
    version = entry_format.FORMAT_VERSION
    # A server-side cursor lives in a transaction; a read-only one that sees one snapshot.
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.connection  # psycopg: a named (server-side) cursor streams the range
        with raw.cursor(name=f"verify_{start}") as rows:
            rows.itersize = 20_000
            rows.execute(SQL, (start, end))
            for (index, time, org, actor_type, actor_id, actor_label, action, target_type, target_id,
                 request_id, payload_sha256, commitment, payload, is_erased, stored) in rows:
                if index != position:
                    kind = "duplicate_entry" if index < position else "missing_entry"
                    return bytes(leaves), (kind, position, gettext_noop("expected entry %(position)s, found %(index)s") % {"position": position, "index": index}), position - start, erased
                fields = {"v": version, "index": index, "time": time, "org": org, "actor_type": actor_type,
                          "actor_id": actor_id, "actor_label": actor_label, "action": action,
                          "target_type": target_type, "target_id": target_id, "request_id": request_id,
                          "payload_sha256": payload_sha256, "commitment": commitment}
                leaf = sha256(b"\x00" + dumps(fields, option=sort)).digest()
                if leaf.hex() != stored:
                    return bytes(leaves), ("entry_modified", index, ENTRY_MODIFIED), position - start, erased
                if is_erased:
                    erased += 1
                elif sha256(dumps(loads(payload), option=sort)).hexdigest() != payload_sha256:
                    return bytes(leaves), ("payload_modified", index, PAYLOAD_MODIFIED), position - start, erased
                leaves += leaf
                position += 1
    if position != end:
        return bytes(leaves), ("missing_entry", position, gettext_noop("entries %(first)s..%(last)s are missing") % {"first": position, "last": end - 1}), position - start, erased
    return bytes(leaves), None, position - start, erased


def verify_parallel(size: int, checkpoints: list[Any], public_key: Any, workers: int | None = None, *,
                    kept: list[Any] | None = None) -> Any:
    from django.db import connection, connections

    from audit.log.verifier import Fault, Report, verify_leaves

    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    bounds = [size * i // workers for i in range(workers + 1)]
    database_name = connection.settings_dict["NAME"]
    connections.close_all()  # the children open their own
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init,
                             initargs=(database_name,)) as pool:
        parts = list(pool.map(check_range, bounds[:-1], bounds[1:]))
    report = Report()
    leaves: list[bytes] = []
    for chunk, fault, seen, erased in parts:
        report.entries += seen
        report.erased_entries += erased
        leaves.extend(chunk[i : i + 32] for i in range(0, len(chunk), 32))
        if fault is not None:
            report.faults.append(Fault(*fault))
            break
    report.full_entries = report.entries
    if report.faults:
        return report
    verify_leaves(leaves, checkpoints, public_key, report, kept=kept or [])
    if not report.faults:
        _erasures(report)
    return report


def _erasures(report: Any) -> None:
    """The erasure check of verifier.verify_log, from the database: each erased payload named by an erasure."""
    from audit.log.models import LogEntry
    from audit.log.verifier import Fault, erasures_check

    report.erased_indexes = list(LogEntry.objects.filter(erased_at__isnull=False).order_by("index")
                                 .values_list("index", flat=True))
    for index, payload in LogEntry.objects.filter(action="subject.erased", erased_at__isnull=True).values_list(
            "index", "payload"):
        named = (payload or {}).get("entries") or []
        report.erasures_recorded.update(i for i in named if isinstance(i, int) and i < index)

    def fail(kind: str, index: int | None, message: str) -> bool:
        report.faults.append(Fault(kind, index, message))
        return True

    erasures_check(report, fail)
