"""Batch jobs: upload, progress, results, cancel; bad files refused with nothing kept."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from inference.models import BatchJob, UsageDaily
from inference.services.jobs import BATCH_JOBS
from portal.jobs import job_requeue_stale
from tests.inference.factories import bearer_client, csv_upload
from tests.waits import patience
from tests.worker import CeleryWorker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def client(served, role="consumer") -> APIClient:
    return bearer_client(served, role)


def csv_file(rows: list[dict], name: str = "rows.csv") -> io.BytesIO:
    return csv_upload(rows, name)


def wait_for(job_id: int, statuses: set[str], timeout: float = 60) -> BatchJob:
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        job = BatchJob.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {BatchJob.objects.get(pk=job_id).status}")


def test_csv_job_runs_with_progress_and_results(celery_worker, tabular) -> None:
    api = client(tabular)
    rows = [{"income": i % 100, "region": "north" if i % 2 else "south"} for i in range(150)]
    created = api.post("/api/v1/models/credit/jobs", {"file": csv_file(rows)}, format="multipart")
    assert created.status_code == 202, created.content
    job = wait_for(created.json()["id"], {"done", "failed"})
    assert job.status == "done" and job.rows_done == 150
    status = api.get(f"/api/v1/jobs/{job.pk}").json()
    assert status["rows_done"] == status["rows_total"] == 150
    results = api.get(f"/api/v1/jobs/{job.pk}/results")
    assert results.status_code == 200
    table = list(csv.DictReader(io.StringIO(b"".join(results.streaming_content).decode())))
    assert len(table) == 150 and table[99]["label"] == ("grant" if 99 % 100 > 50 else "deny")
    assert {"job.created", "job.completed"} <= set(LogEntry.objects.values_list("action", flat=True))
    assert UsageDaily.objects.get(organization=tabular.org, token__isnull=True).rows == 150


def test_jsonl_job(celery_worker, tabular) -> None:
    data = io.BytesIO(b"".join(json.dumps({"income": 70, "region": "south"}).encode() + b"\n" for _ in range(5)))
    data.name = "rows.jsonl"
    created = client(tabular).post("/api/v1/models/credit/jobs", {"file": data}, format="multipart")
    assert wait_for(created.json()["id"], {"done", "failed"}).status == "done"


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"income,region\nlots,north\n", "a.csv", "not a number"),
        (b"income\n5\n", "a.csv", "lacks the columns region"),
        (b"income,region\n5,east\n", "a.csv", "must be one of"),
        (b"", "a.csv", "empty"),
        (b"\n\n", "a.csv", "no header"),
        (b"{bad json\n", "a.jsonl", "not JSON"),
        (b"\xff\xfe\x00", "a.csv", "not UTF-8"),
    ],
)
def test_bad_files_are_refused(celery_worker, tabular, content, name, message) -> None:
    upload = io.BytesIO(content)
    upload.name = name
    response = client(tabular).post("/api/v1/models/credit/jobs", {"file": upload}, format="multipart")
    assert response.status_code == 400, response.content
    assert message in json.dumps(response.json()["error"])
    assert not BatchJob.objects.exists()


def test_cancel_pending_and_running(celery_worker, tabular) -> None:
    api = client(tabular)
    rows = [{"income": 10, "region": "north"}] * 3000
    created = api.post("/api/v1/models/credit/jobs", {"file": csv_file(rows)}, format="multipart").json()
    cancelled = api.post(f"/api/v1/jobs/{created['id']}/cancel").json()
    assert cancelled["cancel_requested"] is True
    job = wait_for(created["id"], {"cancelled", "done"})
    assert job.status == "cancelled" and job.rows_done < 3000
    again = api.post(f"/api/v1/jobs/{created['id']}/cancel")
    assert again.status_code == 409
    results = api.get(f"/api/v1/jobs/{created['id']}/results")
    assert results.status_code == 409 and results.json()["error"]["code"] == "job_not_finished"
    # the unserved rows went back to the quota
    assert UsageDaily.objects.get(organization=tabular.org, token__isnull=True).rows == job.rows_done


def test_stuck_job_is_requeued_and_finishes(celery_worker, tabular) -> None:
    from datetime import timedelta

    from django.utils import timezone

    created = client(tabular).post("/api/v1/models/credit/jobs", {"file": csv_file([{"income": 1, "region": "north"}] * 10)}, format="multipart").json()
    wait_for(created["id"], {"done"})
    # given: a job a crashed worker left running
    BatchJob.objects.filter(pk=created["id"]).update(status="running", rows_done=4,
                                                      heartbeat_at=timezone.now() - timedelta(minutes=5))
    # when
    assert job_requeue_stale(BATCH_JOBS) == 1
    # then
    assert wait_for(created["id"], {"done"}).rows_done == 10


def test_a_restarting_worker_requeues_only_the_jobs_it_was_running(celery_worker, tabular) -> None:
    created = client(tabular).post("/api/v1/models/credit/jobs", {"file": csv_file([{"income": 1, "region": "north"}] * 10)}, format="multipart").json()
    wait_for(created["id"], {"done"})
    # given: a job running on another worker, beating a moment ago
    BatchJob.objects.filter(pk=created["id"]).update(status="running", rows_done=4, worker="other@host")
    # when: a worker of another name starts
    assert job_requeue_stale(BATCH_JOBS, orphaned_by="mine@host") == 0
    # then: the job is left to its worker
    assert BatchJob.objects.get(pk=created["id"]).status == "running"
    # and when its own worker starts again, it runs again from the start
    assert job_requeue_stale(BATCH_JOBS, orphaned_by="other@host") == 1
    done = wait_for(created["id"], {"done"})
    assert done.rows_done == 10 and done.worker == celery_worker.hostname


def test_results_missing_from_storage_get_410_not_a_crash(celery_worker, tabular) -> None:
    from django.core.files.storage import default_storage

    api = client(tabular)
    created = api.post("/api/v1/models/credit/jobs", {"file": csv_file([{"income": 5, "region": "north"}])}, format="multipart")
    job = wait_for(created.json()["id"], {"done"})
    default_storage.delete(job.result_path)  # purged, or the store lost it
    response = api.get(f"/api/v1/jobs/{job.pk}/results")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "job_results_gone"


def _long_job_under_way(tabular) -> tuple[list[dict[str, object]], BatchJob]:
    """A 60,000-row job submitted through the API, once its worker has done some of it."""
    rows = [{"income": i % 100, "region": ("north", "south")[i % 2]} for i in range(60_000)]
    created = client(tabular).post("/api/v1/models/credit/jobs", {"file": csv_file(rows)}, format="multipart")
    assert created.status_code == 202, created.content
    deadline = time.monotonic() + patience(60)
    while (job := BatchJob.objects.get(pk=created.json()["id"])).rows_done == 0:
        assert time.monotonic() < deadline and job.status in ("pending", "running"), job.status
        time.sleep(0.01)
    return rows, job


@contextmanager
def _workers_named(prefix: str) -> Iterator[tuple[str, Callable[[], CeleryWorker]]]:
    """Starts, on demand, workers all of one name of their own, on the pool the web prefers (no
    other test worker takes their jobs); stops them all at the end."""
    import os

    from django.core.cache import cache

    from tests.worker import start_worker

    name, started = f"{prefix}-{os.getpid()}@localhost", []

    def start() -> CeleryWorker:
        started.append(start_worker(queues="gpu", hostname=name))
        return started[-1]

    try:
        yield name, start
    finally:
        for worker in started:
            worker.stop()
        cache.delete("worker-heartbeat:gpu")  # the web sends nothing more to a pool nobody serves


def test_a_job_whose_worker_was_killed_starts_again_when_that_worker_restarts(tabular) -> None:
    """A worker killed mid-job (kill -9, a machine that stops) leaves its job RUNNING; when a worker
    of that name starts again, the job is queued again at once instead of after its heartbeat's
    staleness (minutes), and finishes whole."""
    import signal

    with _workers_named("restarting") as (name, start):
        first = start()
        rows, job = _long_job_under_way(tabular)
        # when: the worker dies mid-job, with no chance to say so
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        job.refresh_from_db()
        assert job.status == "running" and 0 < job.rows_done < len(rows) and job.worker == name
        second = start()
        # then: the restarted worker queues it again and runs it to the end, well before a stale sweep
        done = wait_for(job.pk, {"done", "failed"}, timeout=90)
        assert done.status == "done" and done.rows_done == len(rows), done.error
        results = client(tabular).get(f"/api/v1/jobs/{job.pk}/results")
        assert results.status_code == 200
        assert len(b"".join(results.streaming_content).decode().strip().splitlines()) == len(rows) + 1
        assert "job(s) this worker left running when it stopped were queued again" in second.log()


def test_a_second_live_worker_of_the_same_name_takes_back_nothing(tabular) -> None:
    """Two workers given one name (`-n` copied between hosts): the one that starts second must not
    take the first one's running jobs for jobs left by a dead run of its own."""
    with _workers_named("twin") as (_name, start):
        first = start()
        rows, job = _long_job_under_way(tabular)
        # when: a second worker of that name starts while the first runs the job
        second = start()
        deadline = time.monotonic() + patience(30)
        while "another live worker is named" not in second.log():
            assert time.monotonic() < deadline, second.log()[-3000:]
            time.sleep(0.2)
        # then: the job was not queued again; it runs on to the end once
        done = wait_for(job.pk, {"done", "failed"}, timeout=90)
        assert done.status == "done" and done.rows_done == len(rows), done.error
        assert "queued again" not in second.log()
        assert "job(s) this worker left running" not in first.log()


def test_results_csv_cells_that_a_spreadsheet_would_run_are_neutralised(celery_worker, tabular, tmp_path) -> None:
    """OWASP's rule: a cell starting with = + - @ tab or CR gets a leading apostrophe; numbers stay numbers."""
    from inference.models import ModelAlias
    from inference.services.registry import model_version_transition
    from inference.services.uploads import model_version_register
    from tests.inference.factories import CARD, TINY_SCHEMA, onnx_linear
    from tests.inference.hostile_models import tabular_archive

    payloads = ["=cmd|'/c calc'!A1", "+1+1", "@SUM(1,2)", "-2+3", "plain"]  # (inputs are stripped of tabs)
    schema = {**TINY_SCHEMA, "features": [{**TINY_SCHEMA["features"][0], "min": -100},
                                          {"name": "region", "type": "category", "values": payloads}]}
    folder = tmp_path / "formulas"
    archive = tabular_archive(folder, onnx_linear([[1.0] + [0.0] * 5, [0.0] * 6], [0.0, 0.0]))
    (folder / "schema.json").write_text(json.dumps(schema))
    from inference.ml.artifacts import pack_directory

    archive = pack_directory(folder)
    owner, reviewer = tabular.actors["owner"], tabular.actors["reviewer"]
    version = model_version_register(actor=owner, name="credit", task="tabular-classification",
                                     archive=io.BytesIO(archive), card=CARD)
    model_version_transition(actor=owner, version=version, action="submit")
    model_version_transition(actor=reviewer, version=version, action="approve", comment="ok")
    ModelAlias.objects.filter(model=version.model, name="production").update(version=version)
    rows = [{"income": -5 + i, "region": value} for i, value in enumerate(payloads)]
    created = client(tabular).post("/api/v1/models/credit/jobs", {"file": csv_file(rows)}, format="multipart")
    assert created.status_code == 202, created.content
    job = wait_for(created.json()["id"], {"done", "failed"})
    assert job.status == "done", job.error
    text = b"".join(client(tabular).get(f"/api/v1/jobs/{job.pk}/results").streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["region"] for r in table] == ["'=cmd|'/c calc'!A1", "'+1+1", "'@SUM(1,2)", "'-2+3", "plain"]
    assert table[0]["income"] == "-5.0"  # a negative number is a number, not a formula
    assert "\0" not in text
