"""Batch jobs: upload, progress, results, cancel; bad files refused with nothing kept."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from inference.models import BatchJob, UsageDaily
from inference.services.jobs import batch_job_requeue_stuck
from tests.inference.factories import bearer_client, csv_upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def client(served, role="consumer") -> APIClient:
    return bearer_client(served, role)


def csv_file(rows: list[dict], name: str = "rows.csv") -> io.BytesIO:
    return csv_upload(rows, name)


def wait_for(job_id: int, statuses: set[str], timeout: float = 60) -> BatchJob:
    deadline = time.monotonic() + timeout
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
    assert batch_job_requeue_stuck() == 1
    # then
    assert wait_for(created["id"], {"done"}).rows_done == 10


def test_results_missing_from_storage_get_410_not_a_crash(celery_worker, tabular) -> None:
    from django.core.files.storage import default_storage

    api = client(tabular)
    created = api.post("/api/v1/models/credit/jobs", {"file": csv_file([{"income": 5, "region": "north"}])}, format="multipart")
    job = wait_for(created.json()["id"], {"done"})
    default_storage.delete(job.result_path)  # purged, or the store lost it
    response = api.get(f"/api/v1/jobs/{job.pk}/results")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "job_results_gone"
