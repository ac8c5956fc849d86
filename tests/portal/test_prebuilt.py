"""portal/platform/prebuilt.py: Insert (the same row, key and instance state as the ORM's save of a new instance),
and commits that do not wait for the disk."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inference.models import Prediction
from portal.jobs import JobStatus
from portal.platform.prebuilt import Insert, Statement, commit_without_flush

pytestmark = pytest.mark.django_db


def _new(tabular, **fields) -> Prediction:
    consumer = tabular.actors["consumer"]
    return Prediction(organization=tabular.org, model_version=tabular.version, requested_by=consumer.user,
                      request_id="req-1", inputs={"rows": [{"age": 41, "note": "ünïcode"}], "subject": "s-1"}, rows=1,
                      **fields)


class InsertTests:
    def test_stores_what_the_orms_save_stores_in_one_statement(self, tabular) -> None:
        # given: one prediction saved by the ORM and one by Insert, from the same fields
        before = timezone.now()
        by_orm = _new(tabular)
        by_orm.save()
        mine = _new(tabular)
        # when
        with CaptureQueriesContext(connection) as queries:
            Insert(Prediction).save(mine)
        # then: one INSERT, a new key, a saved instance, auto_now_add set
        assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT")
        assert mine.pk is not None and mine.pk != by_orm.pk
        assert mine._state.adding is False and mine._state.db == "default"
        assert before <= mine.created_at <= timezone.now()
        stored, reference = Prediction.objects.get(pk=mine.pk), Prediction.objects.get(pk=by_orm.pk)
        skip = {"id", "created_at"}
        for field in Prediction._meta.concrete_fields:
            if field.name not in skip:
                assert getattr(stored, field.attname) == getattr(reference, field.attname), field.name
        assert stored.created_at == mine.created_at and stored.status == JobStatus.PENDING
        assert stored.inputs["rows"][0]["note"] == "ünïcode" and stored.token_id is None

    def test_keys_follow_one_another_and_defaults_apply(self, tabular) -> None:
        insert = Insert(Prediction)
        first, second = _new(tabular), _new(tabular, status=JobStatus.RUNNING)
        insert.save(first)
        insert.save(second)  # the statement is built once and reused
        assert second.pk > first.pk
        assert Prediction.objects.get(pk=second.pk).status == JobStatus.RUNNING
        assert Prediction.objects.get(pk=first.pk).status == JobStatus.PENDING

    def test_refuses_a_saved_instance_or_another_model(self, tabular) -> None:
        saved = _new(tabular)
        saved.save()
        with pytest.raises(ValueError, match="takes a new Prediction"):
            Insert(Prediction).save(saved)
        with pytest.raises(ValueError, match="takes a new Prediction"):
            Insert(Prediction).save(tabular.org)
        assert Prediction.objects.count() == 1


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)  # real transactions: a test's own would hold the setting
class NoFlushTests:
    def test_a_transaction_commits_without_waiting_and_the_next_one_waits_again(self) -> None:
        from django.db import transaction

        with transaction.atomic():
            commit_without_flush()
            assert _synchronous_commit() == "off"
        assert _synchronous_commit() == "on"

    def test_a_single_statement_commits_without_waiting_and_changes_nothing_after_it(self, tabular) -> None:
        # given: a pending prediction, claimed by a no_flush statement (as the worker's claim)
        prediction = _new(tabular)
        Insert(Prediction).save(prediction)
        sql = "UPDATE {Prediction} SET {Prediction.status} = %s WHERE {Prediction.id} = %s AND {Prediction.status} = %s"
        claim = Statement(sql, names=[Prediction], no_flush=True)
        # when: in autocommit, as on a worker
        assert connection.get_autocommit()
        claimed = claim.execute(["running", prediction.pk, "pending"])
        again = claim.execute(["running", prediction.pk, "pending"])
        # then: it changed the row once, and the session's setting is untouched
        assert (claimed, again) == (1, 0)
        assert Prediction.objects.get(pk=prediction.pk).status == JobStatus.RUNNING
        assert _synchronous_commit() == "on"
        assert "set_config('synchronous_commit', 'off', true)" in claim._built["postgresql"]
