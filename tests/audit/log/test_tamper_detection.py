"""Every tampering of an export, or of the database, is detected and named with its first index."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit.log import signing
from audit.log.exports import export_bundle, public_key_pem
from audit.log.models import Checkpoint, LogEntry
from audit.log.services import (
    AuditActor,
    audit_erase_subject,
    audit_record,
    checkpoint_create,
    checkpoint_signed,
    log_verify,
)
from audit.log.verify import main as verify_main
from audit.log.verify import verify_bundle
from tests.audit.log.helpers import ACTOR, build_log

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def export(tmp_path) -> Path:
    build_log(30, checkpoint_every=7)
    data, size = export_bundle(organization_id=None)
    assert size == 30
    folder = tmp_path / "export"
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as bundle:
        bundle.extractall(folder)
    (tmp_path / "key.pem").write_text(public_key_pem())
    return folder


def lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "entries.jsonl").read_text().splitlines()]


def write_lines(folder: Path, items: list[dict]) -> None:
    (folder / "entries.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))


def check(folder: Path):
    return verify_bundle(folder, (folder.parent / "key.pem").read_bytes()).first_fault


class ExportTamperTests:
    def test_untouched_export_verifies(self, export) -> None:
        report = verify_bundle(export, (export.parent / "key.pem").read_bytes())
        assert report.ok and report.entries == 30 and report.checkpoints_verified >= 4

    @pytest.mark.parametrize(
        "field", ["time", "org", "actor_type", "actor_id", "actor_label", "action", "target_type",
                  "target_id", "request_id", "payload_sha256", "commitment"],
    )
    def test_one_bit_in_any_field_is_found(self, export, field) -> None:
        items = lines(export)
        value = items[11]["fields"][field]
        if isinstance(value, int):
            items[11]["fields"][field] = value ^ 1
        else:
            text = str(value) or "a"
            items[11]["fields"][field] = chr(ord(text[0]) ^ 1) + text[1:]
        write_lines(export, items)
        fault = check(export)
        assert (fault.kind, fault.index) == ("entry_modified", 11)

    def test_rehashed_modification_is_caught_by_the_checkpoint(self, export) -> None:
        # the forger also rewrites the stored leaf hash: only the signed root can tell
        from audit.log import entry

        items = lines(export)
        items[11]["fields"]["actor_label"] = "mallory"
        items[11]["leaf_hash"] = entry.entry_leaf_hash(items[11]["fields"]).hex()
        write_lines(export, items)
        fault = check(export)
        assert fault.kind == "root_mismatch" and fault.index == 7  # first index after the last good checkpoint

    def test_modified_payload(self, export) -> None:
        items = lines(export)
        items[4]["payload"]["note"] = "rewritten"
        write_lines(export, items)
        assert (check(export).kind, check(export).index) == ("payload_modified", 4)

    def test_deleted_entry(self, export) -> None:
        items = lines(export)
        del items[9]
        write_lines(export, items)
        assert (check(export).kind, check(export).index) == ("missing_entry", 9)

    def test_inserted_entry(self, export) -> None:
        items = lines(export)
        items.insert(9, dict(items[8]))
        write_lines(export, items)
        assert (check(export).kind, check(export).index) == ("duplicate_entry", 9)

    def test_reordered_entries(self, export) -> None:
        items = lines(export)
        items[5], items[6] = items[6], items[5]
        write_lines(export, items)
        assert (check(export).kind, check(export).index) == ("missing_entry", 5)

    def test_truncated_log(self, export) -> None:
        write_lines(export, lines(export)[:25])
        assert (check(export).kind, check(export).index) == ("truncated", 25)

    def test_forged_checkpoint(self, export) -> None:
        checkpoints = json.loads((export / "checkpoints.json").read_text())
        checkpoints[1]["root_hash"] = "ab" * 32
        (export / "checkpoints.json").write_text(json.dumps(checkpoints))
        assert check(export).kind == "bad_signature"

    def test_checkpoints_resigned_with_another_key(self, export) -> None:
        other = signing.load_private_key(signing.generate_private_pem())
        checkpoints = json.loads((export / "checkpoints.json").read_text())
        checkpoints = [signing.sign(other, c["tree_size"], c["root_hash"], c["time"]).to_dict() for c in checkpoints]
        (export / "checkpoints.json").write_text(json.dumps(checkpoints))
        (export / "public_key.pem").write_text(signing.public_pem(other.public_key()))  # swapped too
        assert check(export).kind == "unknown_key"  # the pinned key tells

    def test_standalone_verifier_needs_no_django_and_names_the_fault(self, export) -> None:
        items = lines(export)
        items[3]["fields"]["action"] = "thing.hidden"
        write_lines(export, items)
        code = (
            "import sys; from audit.log.verify import main; rc = main(sys.argv[1:]);"
            "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'imported Django';"
            "sys.exit(rc)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(export), "--public-key", str(export.parent / "key.pem")],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 1, result.stderr
        assert "FAULT entry_modified at index 3" in result.stdout

    def test_cli_exit_codes(self, export, capsys) -> None:
        assert verify_main([str(export), "--public-key", str(export.parent / "key.pem")]) == 0
        assert verify_main([str(export.parent / "missing.zip")]) == 2


class DatabaseTamperTests:
    def test_audit_verify_passes_then_finds_a_modified_row(self) -> None:
        build_log(20, checkpoint_every=6)
        call_command("audit_verify")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # an attacker with the table owner's rights
                cursor.execute("ALTER TABLE audit_log_logentry DISABLE TRIGGER audit_log_entry_guard")
                cursor.execute("UPDATE audit_log_logentry SET actor_label = 'mallory' WHERE index = 13")
                cursor.execute("ALTER TABLE audit_log_logentry ENABLE TRIGGER audit_log_entry_guard")
        else:
            LogEntry.objects.filter(index=13).update(actor_label="mallory")
        with pytest.raises(CommandError, match="entry_modified at index 13"):
            call_command("audit_verify")

    def test_erasure_keeps_the_log_verifiable(self) -> None:
        build_log(12, checkpoint_every=100)
        receipt, erased = audit_erase_subject(
            subject="subject-1", organization_id=1, actor=AuditActor.system("tests")
        )
        assert erased and all(LogEntry.objects.get(index=i).payload is None for i in erased)
        assert LogEntry.objects.get(index=receipt.index).payload == {"entries": erased, "count": len(erased)}
        run = log_verify()  # the erasure's own entry is not signed yet: not OK, and not a fault
        assert (run.ok, run.fault_kind, run.fault_index) == (False, "unverified_tail", receipt.index), run.summary
        checkpoint_create()
        run = log_verify()
        assert run.ok, run.summary


@contextmanager
def triggers_bypassed():
    """As the database's superuser would: `session_replication_role = replica` needs no ALTER and skips the
    append-only triggers (SQLite has none to skip)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")


def rewrite(index: int, **changes) -> None:
    """Changes an entry and recomputes its payload hash and leaf hash, so that only a signature can tell."""
    from audit.log import entry as entries
    from audit.log.services import entry_fields

    with triggers_bypassed():
        LogEntry.objects.filter(index=index).update(**changes)
        row = LogEntry.objects.get(index=index)
        if "payload" in changes:
            row.payload_sha256 = hashlib.sha256(entries.canonical_json(row.payload)).hexdigest()
        row.leaf_hash = entries.entry_leaf_hash(entry_fields(row)).hex()
        LogEntry.objects.filter(index=index).update(payload_sha256=row.payload_sha256, leaf_hash=row.leaf_hash)


class SuperuserTamperTests:
    """What an outside test did as the database superuser, with the triggers bypassed, which audit_verify
    once called OK."""

    def test_a_rehashed_change_after_the_last_checkpoint_is_an_unverified_tail_not_ok(self) -> None:
        build_log(10, checkpoint_every=100)  # one checkpoint, at 10
        audit_record(action="thing.happened", actor=ACTOR, organization_id=1, payload={"i": 10})
        audit_record(action="thing.happened", actor=ACTOR, organization_id=1, payload={"i": 11})
        rewrite(11, payload={"i": "forged"}, actor_label="mallory")
        run = log_verify()
        assert (run.ok, run.fault_kind, run.fault_index) == (False, "unverified_tail", 10)
        assert "UNVERIFIED TAIL" in run.summary and "2 entries" in run.summary and "OK" not in run.summary
        with pytest.raises(SystemExit) as exited:
            call_command("audit_verify")
        assert exited.value.code == 2

    def test_a_deleted_tail_entry_or_a_forged_one_is_never_ok(self) -> None:
        build_log(10, checkpoint_every=100)
        audit_record(action="thing.happened", actor=ACTOR, organization_id=1, payload={"i": 10})
        with triggers_bypassed():
            LogEntry.objects.filter(index=10).delete()
        assert log_verify().ok  # back to what the checkpoint signs: that much is verified, and nothing else is claimed
        audit_record(action="thing.forged", actor=ACTOR, organization_id=1, payload={"i": "forged"})
        run = log_verify()  # the head still counts the deleted entry: the next one lands after a gap
        assert not run.ok and (run.fault_kind, run.fault_index) == ("missing_entry", 10), run.summary

    def test_a_fake_erasure_is_refused(self) -> None:
        build_log(12, checkpoint_every=100)
        with triggers_bypassed():  # blank a payload as an erasure would, with no erasure entry naming it
            LogEntry.objects.filter(index=5).update(payload=None, salt="", erased_at=timezone.now())
        run = log_verify()
        assert (run.fault_kind, run.fault_index) == ("erasure_unrecorded", 5), run.summary

    def test_an_auditor_reads_the_fault_in_their_language(self) -> None:
        """The worker stores the verifier's summary in English (it answers no reader); the audit page says
        it again in the auditor's language, the fault's own sentence included, its kind and index kept."""
        from django.test import Client
        from django.urls import reverse

        from portal.accounts.roles import Role
        from tests.portal.accounts.factories import member

        build_log(12, checkpoint_every=100)
        with triggers_bypassed():
            LogEntry.objects.filter(index=5).update(payload=None, salt="", erased_at=timezone.now())
        run = log_verify()
        assert run.summary.startswith("FAULT erasure_unrecorded at index 5: the entry's payload is erased")
        auditor = member(Role.AUDITOR)
        auditor.language = "zh-hans"
        auditor.save()
        reader = Client()
        reader.force_login(auditor)
        page = reader.get(reverse("audit-verification")).content.decode()
        assert "故障 erasure_unrecorded（第 5 条）：该记录的载荷已被擦除，却没有任何擦除记录指明它" in page
        assert "payload is erased" not in page

    def test_all_checkpoints_deleted_is_a_fault(self) -> None:
        build_log(12, checkpoint_every=5)
        with triggers_bypassed():
            Checkpoint.objects.all().delete()
        run = log_verify()
        assert (run.ok, run.fault_kind) == (False, "no_checkpoint"), run.summary

    def test_the_witness_and_an_auditors_copies_catch_deleted_checkpoints(
            self, settings, tmp_path, django_capture_on_commit_callbacks) -> None:
        settings.AUDIT_WITNESS_FILE = str(tmp_path / "witness.jsonl")
        with django_capture_on_commit_callbacks(execute=True):  # the witness is written once a checkpoint commits
            build_log(12, checkpoint_every=5)
        saved = tmp_path / "auditor.json"
        saved.write_text(json.dumps([checkpoint_signed(cp).to_dict() for cp in Checkpoint.objects.all()]))
        assert len((tmp_path / "witness.jsonl").read_text().splitlines()) == Checkpoint.objects.count() == 3
        assert log_verify().ok
        with triggers_bypassed():  # the last checkpoint goes, and the entries it covered are rewritten
            Checkpoint.objects.filter(tree_size=12).delete()
        rewrite(11, actor_label="mallory")
        run = log_verify()
        assert run.fault_kind in ("checkpoint_missing", "root_mismatch"), run.summary
        settings.AUDIT_WITNESS_FILE = ""  # no witness: the auditor's saved copy still tells
        with pytest.raises(CommandError, match="checkpoint_missing"):
            call_command("audit_verify", "--known-checkpoints", str(saved))


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the parallel path reads PostgreSQL")
def test_parallel_verification_agrees_and_finds_the_first_fault(monkeypatch) -> None:
    # given: a log long enough to be split between processes
    import audit.log.services as services

    monkeypatch.setattr(services, "PARALLEL_VERIFY_FROM", 10)
    build_log(40, checkpoint_every=9)
    # when / then: the same verdict as the single-process verifier
    run = log_verify()
    assert run.ok and run.entries == 40 and run.checkpoints >= 4, run.summary
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_log_logentry DISABLE TRIGGER audit_log_entry_guard")
        cursor.execute("UPDATE audit_log_logentry SET target_id = 'x' WHERE index IN (27, 33)")
        cursor.execute("ALTER TABLE audit_log_logentry ENABLE TRIGGER audit_log_entry_guard")
    run = log_verify()
    assert (run.ok, run.fault_kind, run.fault_index) == (False, "entry_modified", 27)
