"""make bench-audit: the audit log on PostgreSQL, in one run.

Appends per second (one writer, and 8 concurrent writers), the time to verify 10^6 entries
against their checkpoints, the size of an inclusion proof, and the p50 time the log adds to a
prediction's transaction (the same transaction with and without its audit entry).

Prints last: `audit: appends/s = N, verify 1e6 = S s, predict overhead p50 = M ms`.
"""

from __future__ import annotations

import io
import math
import os
import secrets
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import p50, write_section

DATABASE = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/steward_bench")
TOTAL = int(os.environ.get("BENCH_AUDIT_ENTRIES", "1000000"))


def ensure_database() -> None:
    import psycopg

    name = DATABASE.rsplit("/", 1)[1]
    admin = DATABASE.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django() -> None:
    from audit.log.signing import generate_private_pem

    os.environ["DATABASE_URL"] = DATABASE
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("AUDIT_SIGNING_KEY", generate_private_pem())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def reset_log() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_log_logentry, audit_log_merklenode, audit_log_checkpoint, "
                       "audit_log_loghead, audit_log_verificationrun")


PAYLOAD = {"model": "sentiment", "version": 3, "inputs": ["a fine film"], "outputs": [{"label": "POSITIVE"}]}


def appends(writers: int, per_writer: int) -> float:
    from django.db import connection

    from audit.log.services import AuditActor, audit_record

    actor = AuditActor(type="token", id="1", label="bench")
    barrier = threading.Barrier(writers)

    def work(w: int) -> None:
        barrier.wait()
        for i in range(per_writer):
            audit_record(action="prediction.completed", actor=actor, organization_id=1,
                         target_type="inference.Prediction", target_id=w * per_writer + i, payload=PAYLOAD)
        connection.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writers * per_writer / (time.perf_counter() - started)


def floor_inserts(count: int = 3000) -> float:
    """The machine's floor for durable one-row appends: a row of the same columns into a table
    with only a primary key, one committed INSERT per row, through the same Django connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, created_at timestamptz, "
                       "org bigint, actor text, action text, target text, payload jsonb, leaf_hash text)")
        started = time.perf_counter()
        for i in range(count):
            cursor.execute("INSERT INTO bench_floor (created_at, org, actor, action, target, payload, leaf_hash) "
                           "VALUES (now(), 1, 'bench', 'prediction.completed', %s, %s::jsonb, %s)",
                           [str(i), '{"model": "sentiment"}', "0" * 64])
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_floor")
    return count / seconds


def bulk_fill(total: int) -> float:
    """Appends entries up to `total` by COPY, computed exactly as audit_record computes them."""
    from django.db import connection
    from django.utils import timezone

    from audit.log import entry, merkle
    from audit.log.models import LogHead
    from audit.log.services import _time

    head = LogHead.objects.get(pk=1)
    frontier = [(s, bytes.fromhex(h)) for s, h in head.frontier]
    start = head.size
    redacted_hash = entry.payload_sha256(PAYLOAD)
    payload_json = entry.canonical_json(PAYLOAD).decode()
    began = time.perf_counter()
    raw = connection.connection  # psycopg 3
    index = start
    batch = 50_000
    while index < total:
        entries, nodes = io.StringIO(), io.StringIO()
        now = timezone.now()
        stamp = _time(now)
        for i in range(index, min(total, index + batch)):
            salt = secrets.token_bytes(16)
            fields = {"v": 1, "index": i, "time": stamp, "org": 1 + i % 5, "actor_type": "token", "actor_id": "1",
                      "actor_label": "bench", "action": "prediction.completed", "target_type": "inference.Prediction",
                      "target_id": str(i), "request_id": "", "payload_sha256": redacted_hash,
                      "commitment": entry.commitment(salt, PAYLOAD)}
            leaf = entry.entry_leaf_hash(fields)
            entries.write("\t".join([str(i), now.isoformat(), str(fields["org"]), "token", "1", "bench",
                                     "prediction.completed", "inference.Prediction", str(i), "",
                                     payload_json.replace("\\", "\\\\"), redacted_hash, fields["commitment"],
                                     salt.hex(), "", "\\N", leaf.hex()]) + "\n")
            for level, position, h in merkle.frontier_push(frontier, leaf):
                nodes.write(f"{level}\t{position}\t{h.hex()}\n")
        with raw.cursor() as cursor:
            with cursor.copy("COPY audit_log_logentry (index, created_at, organization_id, actor_type, actor_id, "
                             "actor_label, action, target_type, target_id, request_id, payload, payload_sha256, "
                             "commitment, salt, subject_key, erased_at, leaf_hash) FROM STDIN") as copy:
                copy.write(entries.getvalue())
            with cursor.copy("COPY audit_log_merklenode (level, position, hash) FROM STDIN") as copy:
                copy.write(nodes.getvalue())
        index = min(total, index + batch)
        raw.commit()
        print(f"  filled {index:,} entries", flush=True)
    LogHead.objects.filter(pk=1).update(size=total, frontier=[[s, h.hex()] for s, h in frontier])
    return time.perf_counter() - began


def overhead_ms(samples: int = 400) -> tuple[float, float]:
    """p50 of a prediction-like transaction without and with its audit entry."""
    from django.db import connection, transaction

    from audit.log.services import AuditActor, audit_record
    from portal.accounts.models import Organization

    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    actor = AuditActor(type="token", id="1", label="bench")
    without, with_log = [], []
    for i in range(samples):
        for store, audited in ((without, False), (with_log, True)):
            began = time.perf_counter()
            with transaction.atomic():
                Organization.objects.filter(pk=org.pk).update(daily_row_quota=100_000 + i)
                if audited:
                    audit_record(action="prediction.completed", actor=actor, organization_id=org.pk,
                                 target_type="inference.Prediction", target_id=i, payload=PAYLOAD)
            store.append((time.perf_counter() - began) * 1000)
    connection.close()
    return p50(without), p50(with_log)


def main() -> None:
    ensure_database()
    setup_django()
    from audit.log.selectors import inclusion_proof, log_size
    from audit.log.services import checkpoint_create, log_verify

    reset_log()
    floor = floor_inserts()
    print(f"floor, one committed INSERT per row: {floor:,.0f} rows/s", flush=True)
    single = appends(1, 3000)
    print(f"single writer: {single:,.0f} appends/s", flush=True)
    concurrent = appends(8, 500)
    print(f"8 writers: {concurrent:,.0f} appends/s", flush=True)
    base_without, base_with = overhead_ms()
    overhead = base_with - base_without
    print(f"prediction transaction p50: {base_without:.2f} ms without the log, {base_with:.2f} ms with it", flush=True)
    fill_seconds = bulk_fill(TOTAL)
    checkpoint_create(force=True)
    size = log_size()
    began = time.perf_counter()
    run = log_verify()
    verify_seconds = time.perf_counter() - began
    assert run.ok, run.summary
    proof_began = time.perf_counter()
    path = inclusion_proof(index=size // 3, tree_size=size)
    proof_ms = (time.perf_counter() - proof_began) * 1000
    bound = math.ceil(math.log2(size))
    table = f"""
PostgreSQL 15 on this machine; `{DATABASE.rsplit('/', 1)[1]}` database; entries as a prediction writes them.

| measure | value | goal |
|---|---|---|
| floor: one committed INSERT per row, primary key only, same connection | {floor:,.0f} rows/s | |
| appends/s, one writer (3,000 appends) | {single:,.0f} | >= 3,000 |
| appends/s, 8 concurrent writers (4,000 appends) | {concurrent:,.0f} | >= 3,000 |
| verify {size:,} entries against {run.checkpoints} checkpoint(s) | {verify_seconds:.2f} s | <= 10 s |
| inclusion proof at n = {size:,} | {len(path)} hashes ({len(path) * 32} bytes), served in {proof_ms:.1f} ms | ceil(log2 n) = {bound} |
| prediction transaction p50 without / with its audit entry | {base_without:.2f} / {base_with:.2f} ms | |
| p50 the log adds to a prediction | {overhead:.2f} ms | <= 1 ms |

(Bulk fill to {size:,} entries by COPY, computed as `audit_record` computes them: {fill_seconds:.0f} s.)
"""
    write_section("bench-audit", table)
    print(table)
    print(f"audit: appends/s = {min(single, concurrent):.0f}, verify 1e6 = {verify_seconds * 1e6 / size:.2f} s, "
          f"predict overhead p50 = {overhead:.2f} ms")


if __name__ == "__main__":
    main()
