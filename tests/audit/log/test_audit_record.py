"""audit_record: gap-free sequencing, hashes that recompute, redaction before storage."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit.log import entry, merkle, sequencer
from audit.log.exceptions import InvalidAction
from audit.log.models import LogEntry, LogHead, MerkleNode
from audit.log.services import AuditActor, Receipt, audit_record, entry_fields

ACTOR = AuditActor(type="user", id="7", label="alice")


def record(i: int = 0, **kwargs):
    return audit_record(
        action=kwargs.pop("action", "thing.happened"), actor=ACTOR, organization_id=1,
        target_type="t.T", target_id=i, payload=kwargs.pop("payload", {"i": i}), **kwargs,
    )


@pytest.mark.django_db
class AuditRecordTests:
    def test_entries_are_sequenced_and_hashes_recompute(self) -> None:
        receipts = [record(i) for i in range(13)]
        rows = list(LogEntry.objects.order_by("index"))
        assert [r.index for r in rows] == list(range(13))
        for receipt, row in zip(receipts, rows, strict=True):
            assert receipt.leaf_hash == row.leaf_hash == entry.entry_leaf_hash(entry_fields(row)).hex()
            assert row.payload_sha256 == entry.payload_sha256(row.payload)

    def test_head_root_and_stored_nodes_match_the_leaves(self) -> None:
        for i in range(11):
            record(i)
        leaves = [bytes.fromhex(h) for h in LogEntry.objects.values_list("leaf_hash", flat=True)]
        head = LogHead.objects.get()
        frontier = [(s, bytes.fromhex(h)) for s, h in head.frontier]
        assert head.size == 11 and merkle.frontier_root(frontier) == merkle.root_from_leaves(leaves)
        for node in MerkleNode.objects.all():
            size = 1 << node.level
            span = leaves[node.position * size : (node.position + 1) * size]
            assert bytes.fromhex(node.hash) == merkle.root_from_leaves(span)

    def test_payload_is_redacted_but_committed_to_raw(self) -> None:
        raw = {"email": "jane@example.com", "text": "call +44 20 7946 0958"}
        receipt = record(payload=raw)
        row = LogEntry.objects.get(index=receipt.index)
        assert row.payload == {"email": "[EMAIL]", "text": "call [PHONE]"}
        assert row.commitment == entry.commitment(bytes.fromhex(receipt.salt), raw)
        assert row.commitment != entry.commitment(bytes.fromhex(receipt.salt), row.payload)

    def test_rolled_back_entry_leaves_no_gap(self) -> None:
        record(0)
        with pytest.raises(RuntimeError), transaction.atomic():
            record(1)
            raise RuntimeError("the business change failed")
        record(2)
        assert list(LogEntry.objects.values_list("index", flat=True)) == [0, 1]

    @pytest.mark.parametrize("action", ["created", "Token.Created", "token.", "token created"])
    def test_malformed_actions_are_refused(self, action) -> None:
        with pytest.raises(InvalidAction):
            record(action=action)
        assert not LogEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_a_gap_free_sequence() -> None:
    # given: 8 threads, each appending in its own transactions (SQLite serialises, PostgreSQL locks)
    errors: list[BaseException] = []
    receipts: list[tuple[int, Receipt]] = []

    def writer(w: int) -> None:
        try:
            for i in range(15):
                receipts.append((w * 100 + i, record(w * 100 + i)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    # when
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert not errors
    indexes = list(LogEntry.objects.order_by("index").values_list("index", flat=True))
    assert indexes == list(range(120))
    # Each caller got the receipt of its own entry, also when another thread wrote it in a group.
    stored = {row.index: row for row in LogEntry.objects.all()}
    assert len(receipts) == 120
    for target, receipt in receipts:
        assert stored[receipt.index].target_id == str(target)
        assert stored[receipt.index].leaf_hash == receipt.leaf_hash
    leaves = [bytes.fromhex(h) for h in LogEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]
    head = LogHead.objects.get()
    assert merkle.frontier_root([(s, bytes.fromhex(h)) for s, h in head.frontier]) == merkle.root_from_leaves(leaves)


def test_group_commit_wakes_each_caller_with_its_own_result_or_its_groups_error(monkeypatch) -> None:
    # given: a statement that blocks until released, so that callers queue behind the first one,
    # and fails for the second group it is given
    release, calls = threading.Event(), []

    def statement(pending):
        calls.append([p.salt for p in pending])
        if len(calls) == 1:
            release.wait(5)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return [(int(p.salt), p.salt) for p in pending]

    monkeypatch.setattr(sequencer, "_append_guessed", statement)
    group = sequencer._GroupCommit()
    outcomes: dict[int, object] = {}

    def caller(i: int) -> None:
        try:
            outcomes[i] = group.append([sequencer.Pending({}, None, "{}", str(i), "")])  # type: ignore[arg-type]
        except RuntimeError as exc:
            outcomes[i] = exc

    first = threading.Thread(target=caller, args=(0,))
    first.start()
    while not calls:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=caller, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
    while len(group._queue) < 5:
        threading.Event().wait(0.001)
    # when: the first statement returns; the next leader writes the five queued in one statement
    release.set()
    for t in [first, *others]:
        t.join(5)
    # then
    assert calls == [["0"], ["1", "2", "3", "4", "5"]]
    assert outcomes[0] == [(0, "0")]
    assert all(isinstance(outcomes[i], RuntimeError) for i in range(1, 6))
    # and the next caller leads again: nobody was left holding the turn
    last = threading.Thread(target=caller, args=(9,))
    last.start()
    last.join(5)
    assert outcomes[9] == [(9, "9")]


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="only PostgreSQL appends on a guessed head")
def test_a_stale_guess_of_the_head_is_never_built_on() -> None:
    # given: this process's guess of the head has the right size but another tree's frontier,
    # as after its own transaction rolled back and another process appended the same number
    for i in range(3):
        record(i)
    sequencer._HEAD.set(3, [(2, bytes(32)), (1, bytes(range(32)))])
    # when
    receipts = [record(i) for i in range(3, 6)]
    # then: the appends went through the locked path and the tree is that of the stored leaves
    assert [r.index for r in receipts] == [3, 4, 5]
    leaves = [bytes.fromhex(h) for h in LogEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]
    head = LogHead.objects.get()
    assert head.size == 6
    assert merkle.frontier_root([(s, bytes.fromhex(h)) for s, h in head.frontier]) == merkle.root_from_leaves(leaves)
    for node in MerkleNode.objects.all():
        span = leaves[node.position << node.level : (node.position + 1) << node.level]
        assert bytes.fromhex(node.hash) == merkle.root_from_leaves(span)


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the triggers are PostgreSQL's")
def test_postgres_refuses_update_and_delete() -> None:
    from django.db.utils import DatabaseError

    record(0)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LogEntry.objects.update(action="thing.rewritten")
    with pytest.raises(DatabaseError, match="cannot be deleted"), transaction.atomic():
        LogEntry.objects.all().delete()


def _tree_matches_the_stored_leaves() -> bool:
    leaves = [bytes.fromhex(h) for h in LogEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]
    head = LogHead.objects.get()
    frontier = [(s, bytes.fromhex(h)) for s, h in head.frontier]
    nodes_match = all(
        bytes.fromhex(node.hash) == merkle.root_from_leaves(leaves[node.position << node.level :
                                                                   (node.position + 1) << node.level])
        for node in MerkleNode.objects.all()
    )
    return head.size == len(leaves) and merkle.frontier_root(frontier) == merkle.root_from_leaves(leaves) and nodes_match


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the prepared append is PostgreSQL's")
def test_postgres_appends_one_or_many_entries_through_a_prepared_statement() -> None:
    from audit.log.services import AuditRecord, audit_record_many

    # when: single entries (a VALUES row, whose shape varies with the nodes it completes) and
    # batches of 2 to 9 (column arrays), each shape more than psycopg's 5 runs before it prepares
    for i in range(40):
        record(i)
    for size in [2, 3, 9, 2, 5, 7, 3, 2]:
        audit_record_many([AuditRecord("thing.happened", ACTOR, 1, "t.T", n, {"n": n}) for n in range(size)])
    # then: gap-free, the tree is that of the stored leaves, and the appends ran prepared
    assert list(LogEntry.objects.order_by("index").values_list("index", flat=True)) == list(range(40 + 33))
    assert _tree_matches_the_stored_leaves()
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans + custom_plans FROM pg_prepared_statements"
                       " WHERE statement LIKE 'WITH h AS (UPDATE audit_log_loghead%%'")
        runs = [row[0] for row in cursor.fetchall()]
    # (the single-entry shapes seen more than 5 times, and the batches' one shape)
    assert len(runs) >= 2 and max(runs) >= 10


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the prepared append is PostgreSQL's")
def test_a_failed_append_raises_djangos_error_and_writes_nothing() -> None:
    from django.db import IntegrityError

    # given: a node planted where the next entry's completed pair will go (a corrupted table)
    record(0)
    MerkleNode.objects.create(level=1, position=0, hash="0" * 64)
    # when: the append's one statement fails on the node's unique constraint
    with pytest.raises(IntegrityError), transaction.atomic():
        record(1)
    # then: as Django's IntegrityError (which callers catch), and neither the entry nor the head moved
    assert list(LogEntry.objects.values_list("index", flat=True)) == [0]
    assert LogHead.objects.get().size == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_rule_created_by_another_process_redacts_the_next_append(in_transaction) -> None:
    from django.db.models import F
    from django.test.utils import CaptureQueriesContext

    from audit.log.models import RedactionRule

    # given: this process has appended, so it holds the rules' version and its (empty) rules
    record(0, payload={"note": "case CASE-0001"})
    with CaptureQueriesContext(connection) as queries:
        record(1, payload={"note": "case CASE-0002"})
    assert not any("redactionrule" in q["sql"] for q in queries.captured_queries), "an append looked the rules up"
    # when: another process creates a rule (the same rows redaction_rule_create writes, but
    # without telling this process's rule book)
    RedactionRule.objects.create(organization_id=1, label="CASE", pattern=r"CASE-\d{4}")
    LogHead.objects.filter(pk=1).update(rules_version=F("rules_version") + 1)
    if in_transaction:
        with transaction.atomic():
            receipt = record(2, payload={"note": "case CASE-0003"})
    else:
        receipt = record(2, payload={"note": "case CASE-0003"})
    # then: the append was prepared again with the new rule, its receipt and hashes still hold
    stored = LogEntry.objects.get(index=receipt.index)
    assert stored.payload == {"note": "case [CASE]"}
    assert LogEntry.objects.get(index=1).payload == {"note": "case CASE-0002"}
    assert stored.leaf_hash == receipt.leaf_hash == entry.entry_leaf_hash(entry_fields(stored)).hex()
    assert stored.commitment == entry.commitment(bytes.fromhex(receipt.salt), {"note": "case CASE-0003"})
    assert _tree_matches_the_stored_leaves()


@pytest.mark.django_db(transaction=True)
def test_rules_read_in_a_rolled_back_transaction_are_never_taken_for_rules_committed_later() -> None:
    from audit.log import services
    from audit.log.models import RedactionRule
    from tests.portal.accounts.factories import OrganizationFactory

    org = OrganizationFactory()

    def append(note: str) -> LogEntry:
        receipt = audit_record(action="thing.happened", actor=ACTOR, organization_id=org.pk, payload={"note": note})
        return LogEntry.objects.get(index=receipt.index)

    # given: a rule created and appended under (so this process read the rules of its version) in a
    # transaction that then rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        services.redaction_rule_create(actor=ACTOR, organization_id=org.pk, label="GONE", pattern=r"GONE-\d{4}")
        assert append("GONE-0001").payload == {"note": "[GONE]"}
        raise RuntimeError("rolled back")
    # when: another process creates a rule, without telling this process's rule book
    with transaction.atomic():
        RedactionRule.objects.create(organization_id=org.pk, label="CASE", pattern=r"CASE-\d{4}")
        services._move_rules_version()
    # then: this process's next append is redacted by the committed rule, not by the rolled-back one
    assert append("GONE-0002 CASE-0003").payload == {"note": "GONE-0002 [CASE]"}
