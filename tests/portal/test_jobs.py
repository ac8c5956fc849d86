"""The job framework (portal/jobs.py): every kind registered once, claimed once, failed and settled once."""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from audit.log.models import LogEntry
from inference.models import BatchJob, UsageDaily
from inference.services.jobs import BATCH_JOBS
from inference.services.usage import quota_reserve
from portal import jobs
from portal.jobs import JobStatus, JobTask, job_beat, job_claim, job_fail, job_finish, jobs_requeue_stale

KINDS = {"batch job", "explanation", "global explanation", "fine-tuning", "bias report", "compliance export", "evaluation",
         "compression", "canary audit",
         "model upload", "completion", "completion explanation"}


def _job(served, *, rows: int = 10, status: str = JobStatus.PENDING, rows_done: int = 0) -> BatchJob:
    quota_reserve(organization=served.org, rows=rows)
    return BatchJob.objects.create(
        organization=served.org, model_version=served.version, created_by=served.actors["owner"].user,
        input_name="rows.csv", input_path="jobs/none.jsonl", input_format="csv", rows_total=rows,
        rows_done=rows_done, status=status)


def _quota_used(served) -> int:
    return UsageDaily.objects.get(organization=served.org, token__isnull=True).rows


@pytest.mark.django_db
def test_every_kind_is_registered_once_with_its_task_and_swept() -> None:
    from portal.celery import app

    app.loader.import_default_modules()  # what a worker does as it starts: the apps' tasks modules
    assert {kind.name for kind in jobs.kinds()} == KINDS
    for kind in jobs.kinds():
        task = import_string(kind.task)
        assert isinstance(task, JobTask) and task.job_kind == kind.name and task.name in app.tasks
        assert task.acks_late and task.ignore_result
    found = jobs_requeue_stale()
    # a request someone waits on (an explanation, a completion) is never requeued; every other kind is swept
    assert set(found) == KINDS - {"explanation", "completion"} and set(found.values()) == {0}
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "portal.tasks.job_sweeps_task" in schedule and "portal.tasks.job_sweeps_task" in app.tasks


def test_a_second_kind_of_the_same_name_is_refused() -> None:
    with pytest.raises(ValueError, match="two kinds of job are named 'batch job'"):
        jobs.register(dataclasses.replace(BATCH_JOBS, model=LogEntry))
    assert jobs.register(BATCH_JOBS) is BATCH_JOBS  # the same kind again: a module imported twice


@pytest.mark.django_db
def test_a_failing_sweep_is_reported_after_the_others_have_run(monkeypatch, caplog) -> None:
    swept: list[str] = []
    real = jobs.job_requeue_stale

    def sweep(kind, *, orphaned_by: str = "") -> int:
        if kind.name == "bias report":
            raise RuntimeError("the table is locked")
        swept.append(kind.name)
        return real(kind, orphaned_by=orphaned_by)

    monkeypatch.setattr(jobs, "job_requeue_stale", sweep)
    with pytest.raises(jobs.SweepsFailed, match="bias report"):
        jobs_requeue_stale(orphaned_by="worker0@host")
    assert set(swept) == KINDS - {"explanation", "completion", "bias report"}
    assert "the sweep of bias report failed (for worker0@host)" in caplog.text


@pytest.mark.django_db
def test_a_job_is_claimed_once_and_a_settled_job_neither_beats_nor_finishes(tabular) -> None:
    job = _job(tabular)
    assert job_claim(BatchJob, job.pk, rows_done=0)
    assert not job_claim(BatchJob, job.pk)  # a redelivered task does nothing
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.started_at and job.heartbeat_at
    assert job_beat(BatchJob, job.pk, rows_done=3)
    assert not job_beat(BatchJob, job.pk, only={"cancel_requested": True})  # it should stop when that holds
    assert job_fail(BATCH_JOBS, job.pk, error="OSError: disk full")
    assert not job_beat(BatchJob, job.pk, rows_done=4)
    assert not job_finish(BatchJob, job.pk, result_path="jobs/x.csv")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.rows_done == 3 and job.result_path == ""


@pytest.mark.django_db
def test_a_failure_is_stored_settled_and_audited_once(tabular) -> None:
    job = _job(tabular, rows=10, status=JobStatus.RUNNING, rows_done=4)
    assert _quota_used(tabular) == 10
    assert job_fail(BATCH_JOBS, job.pk, error="OSError: disk full")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "OSError: disk full" and job.finished_at
    assert _quota_used(tabular) == 4  # the six rows never predicted went back
    entry = LogEntry.objects.get(action="job.failed", target_id=str(job.pk))
    assert entry.payload["error"] == "OSError: disk full"
    # a second failure (the task's handler after the service's own) changes nothing
    assert not job_fail(BATCH_JOBS, job.pk, error="again")
    assert _quota_used(tabular) == 4 and LogEntry.objects.filter(action="job.failed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_settlement_that_fails_leaves_the_job_as_it_was(tabular) -> None:
    job = _job(tabular, status=JobStatus.RUNNING)

    def broken(job: BatchJob) -> dict:
        raise RuntimeError("the ledger is locked")

    with pytest.raises(RuntimeError):
        job_fail(dataclasses.replace(BATCH_JOBS, settle=broken), job.pk, error="boom")
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.error == ""
    assert not LogEntry.objects.filter(action="job.failed", target_id=str(job.pk)).exists()


@pytest.mark.django_db
def test_a_kind_with_a_public_error_never_stores_what_the_task_said(tabular, caplog) -> None:
    kind = dataclasses.replace(BATCH_JOBS, public_error="The job could not be completed; run it again.")
    job = _job(tabular, status=JobStatus.RUNNING)
    assert job_fail(kind, job.pk, error="ValueError: secret printed by the model")
    job.refresh_from_db()
    assert job.error == "The job could not be completed; run it again."
    entry = LogEntry.objects.get(action="job.failed", target_id=str(job.pk))
    assert "secret" not in str(entry.payload)
    assert "secret printed by the model" in caplog.text  # for the operators, in the log
    # a reason meant for the user is stored as it is
    other = _job(tabular, status=JobStatus.RUNNING)
    assert job_fail(kind, other.pk, error="The file has no rows.", public=True)
    assert BatchJob.objects.get(pk=other.pk).error == "The file has no rows."


@pytest.mark.django_db
def test_a_task_that_raises_is_failed_by_the_framework(tabular) -> None:
    from inference.tasks import batch_job_run_task

    job = _job(tabular, status=JobStatus.RUNNING)
    batch_job_run_task.on_failure(ValueError("no such column"), "task-id", (job.pk,), {}, None)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "ValueError: no such column"
