"""Serving end to end: the REST API, a real Celery worker process, receipts in the audit log."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from audit.log.exports import public_key_pem
from audit.log.models import LogEntry
from audit.log.services import checkpoint_create
from audit.log.signing import load_public_key
from audit.log.verifier import verify_inclusion_document
from inference.models import Prediction, UsageDaily
from tests.inference.factories import serve_model
from tests.portal.accounts.factories import OrganizationFactory, token_for
from tests.waits import patience

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROW = {"income": 90, "region": "north"}


def client(served, role="consumer", **token_kwargs) -> APIClient:
    api = APIClient()
    actor = served.actors[role]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(actor.user, served.org, role, **token_kwargs).secret}")
    return api


def test_consumer_predicts_with_a_verifiable_receipt(celery_worker, tabular) -> None:
    # when
    response = client(tabular).post("/api/v1/models/credit/predict", {"inputs": [ROW, {"income": 10, "region": "south"}]}, format="json")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert [p["label"] for p in body["predictions"]] == ["grant", "deny"]
    assert body["version"] == 1 and body["request_id"] == response["X-Request-ID"]
    assert abs(sum(body["predictions"][0]["scores"].values()) - 1) < 1e-5
    entry = LogEntry.objects.get(index=body["receipt"]["index"])
    assert entry.action == "prediction.completed" and entry.leaf_hash == body["receipt"]["leaf_hash"]
    assert entry.payload["outputs"][0]["label"] == "grant" and entry.request_id == body["request_id"]
    # metered for the model's time on its rows, not for the wait (nor a first load of the model)
    assert 0 < body["compute_ms"] == entry.payload["compute_ms"] <= entry.payload["latency_ms"]
    # and the receipt proves inclusion once a checkpoint covers it
    checkpoint_create()
    proof = client(tabular).get(f"/api/v1/audit/proofs/inclusion?index={body['receipt']['index']}").json()
    assert verify_inclusion_document(proof, load_public_key(public_key_pem())) is None
    usage = UsageDaily.objects.get(organization=tabular.org, token__isnull=True)
    assert usage.rows == 2 and usage.requests == 1 and usage.compute_ms == pytest.approx(body["compute_ms"])
    per_token = UsageDaily.objects.get(organization=tabular.org, token__isnull=False)  # the metering of the token
    assert per_token.rows == 2 and per_token.requests == 1 and per_token.compute_ms == usage.compute_ms


def test_versions_and_aliases_resolve(celery_worker, tabular) -> None:
    api = client(tabular)
    assert api.post("/api/v1/models/credit@1/predict", {"inputs": [ROW]}, format="json").status_code == 200
    assert api.post("/api/v1/models/credit@production/predict", {"inputs": [ROW]}, format="json").status_code == 200
    missing = api.post("/api/v1/models/credit@staging/predict", {"inputs": [ROW]}, format="json")
    assert missing.status_code == 404 and "staging" in missing.json()["error"]["message"]


def test_real_sentiment_model_serves(celery_worker, sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(), name="sentiment", task="text-classification", archive=sentiment_bytes)
    response = client(served).post(
        "/api/v1/models/sentiment/predict",
        {"inputs": ["a gorgeous, witty and moving film", "dull, lifeless and far too long"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert [p["label"] for p in response.json()["predictions"]] == ["POSITIVE", "NEGATIVE"]


def _sessions_opened() -> int:
    """How many sessions PostgreSQL has opened on this database, closed ones included."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_the_worker_keeps_its_database_connections_between_predictions(celery_worker, tabular) -> None:
    """Celery's Django fixup would open a new database backend for every task; the worker keeps
    its connections (closing them only by DB_CONN_MAX_AGE or after an error), as the web does."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("counts sessions in pg_stat_database")
    api = client(tabular)
    for _ in range(4):  # the worker's threads open their connections
        assert api.post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json").status_code == 200
    # when
    before = _sessions_opened()
    for _ in range(10):
        assert api.post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json").status_code == 200
    # then: at most a thread the pool had not used yet connected; not one backend per prediction
    time.sleep(1.5)  # a backend's statistics reach pg_stat_database within a second
    assert _sessions_opened() - before <= 2


def test_bad_inputs_get_400_and_nothing_is_stored(celery_worker, tabular) -> None:
    api = client(tabular)
    cases = [
        {"inputs": [{"income": "high", "region": "north"}]},
        {"inputs": []},
        {"inputs": [ROW] * 65},
        {"inputs": [ROW], "temperature": 2},
        {"inputs": "not a list"},
    ]
    for body in cases:
        response = api.post("/api/v1/models/credit/predict", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["message"]
    assert not Prediction.objects.exists()


def test_tenants_and_roles(celery_worker, tabular, tmp_path) -> None:
    other = serve_model(OrganizationFactory(), name="other-credit", task="tabular-classification",
                        archive=__import__("tests.inference.factories", fromlist=["x"]).tiny_tabular_archive(tmp_path / "o"))
    api = client(tabular)
    assert api.post("/api/v1/models/other-credit/predict", {"inputs": [ROW]}, format="json").status_code == 404
    assert client(tabular, "auditor").post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json").status_code == 403
    prediction = client(other).post("/api/v1/models/other-credit/predict", {"inputs": [ROW]}, format="json").json()
    assert api.get(f"/api/v1/predictions/{prediction['id']}").status_code == 404


def test_daily_quota_gives_429_and_is_not_overspent(celery_worker, tabular) -> None:
    tabular.org.daily_row_quota = 3
    tabular.org.save()
    api = client(tabular)
    assert api.post("/api/v1/models/credit/predict", {"inputs": [ROW, ROW]}, format="json").status_code == 200
    over = api.post("/api/v1/models/credit/predict", {"inputs": [ROW, ROW]}, format="json")
    assert over.status_code == 429 and "quota" in over.json()["error"]["message"]
    assert api.post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json").status_code == 200
    assert UsageDaily.objects.get(organization=tabular.org, token__isnull=True).rows == 3


def test_unapproved_version_does_not_serve(celery_worker, tabular, tmp_path) -> None:
    from tests.inference.factories import tiny_tabular_archive

    owner = client(tabular, "owner")
    with open(tmp_path / "a.zip", "wb") as handle:
        handle.write(tiny_tabular_archive(tmp_path / "v2"))
    with open(tmp_path / "a.zip", "rb") as handle:
        created = owner.post("/api/v1/models", {"name": "credit", "task": "tabular-classification",
                                                  "archive": handle}, format="multipart")
    assert created.status_code == 201, created.content
    response = client(tabular).post("/api/v1/models/credit@2/predict", {"inputs": [ROW]}, format="json")
    assert response.status_code == 404  # consumers do not even see drafts
    response = owner.post("/api/v1/models/credit@2/predict", {"inputs": [ROW]}, format="json")
    assert response.status_code == 409 and "draft" in response.json()["error"]["message"]


def test_timeout_gives_504_and_marks_the_prediction_failed(celery_worker, tabular, settings, monkeypatch) -> None:
    # given: the heartbeat says a worker is alive, but none takes the work (a hung worker)
    monkeypatch.setattr("inference.services.predictions.serving_queue", lambda: "hung-pool")
    settings.PREDICT_TIMEOUT_SECONDS = 1.0
    # when
    began = time.monotonic()
    response = client(tabular).post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json")
    # then: an answer in about the timeout, not a hang; the prediction failed, its quota back
    assert response.status_code == 504 and "answered" in response.json()["error"]["message"]
    assert time.monotonic() - began < 10
    assert Prediction.objects.get().status == "failed"
    assert LogEntry.objects.filter(action="prediction.failed").exists()
    assert UsageDaily.objects.get(organization=tabular.org, token__isnull=True).rows == 0


def test_a_prediction_the_worker_fails_gets_its_error_at_once(celery_worker, tabular) -> None:
    # given: a version whose stored artifact no longer matches its recorded SHA-256
    from inference.models import ModelVersion

    ModelVersion.objects.filter(pk=tabular.version.pk).update(artifact_sha256="0" * 64)
    # when
    began = time.monotonic()
    response = client(tabular).post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json")
    # then: the worker's own error, as soon as it failed (not a 504 after the timeout)
    assert response.status_code == 500, response.content
    error = response.json()["error"]
    assert error["code"] == "artifact_mismatch" and "SHA-256" in error["message"]
    assert time.monotonic() - began < 10
    deadline = time.monotonic() + patience(10)  # the task's failure handler marks it failed, just after the answer
    while Prediction.objects.get().status != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Prediction.objects.get().status == "failed"
    assert UsageDaily.objects.get(organization=tabular.org, token__isnull=True).rows == 0


def test_no_worker_gives_503(tabular, settings) -> None:
    # given: a cache where no worker has beaten (a fresh key prefix)
    from django.core.cache import cache

    cache.key_prefix = "no-workers-here"
    try:
        response = client(tabular).post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json")
    finally:
        cache.key_prefix = settings.CACHES["default"]["KEY_PREFIX"]
    assert response.status_code == 503 and "worker" in response.json()["error"]["message"]
    assert not Prediction.objects.exists()


@pytest.fixture
def completions_refused_by_the_log(db):
    """The audit log refuses prediction receipts (as a full disk or a broken log would), in the database itself."""
    from django.db import connection

    if connection.vendor == "postgresql":
        statements = [
            "CREATE FUNCTION test_refuse_receipt() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit log unavailable (test)'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER test_refuse_receipt BEFORE INSERT ON audit_log_logentry FOR EACH ROW "
            "WHEN (NEW.action = 'prediction.completed') EXECUTE FUNCTION test_refuse_receipt()",
        ]
        undo = ["DROP TRIGGER test_refuse_receipt ON audit_log_logentry", "DROP FUNCTION test_refuse_receipt()"]
    else:
        statements = ["CREATE TRIGGER test_refuse_receipt BEFORE INSERT ON audit_log_logentry "
                      "WHEN NEW.action = 'prediction.completed' BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"]
        undo = ["DROP TRIGGER test_refuse_receipt"]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    yield
    with connection.cursor() as cursor:
        for statement in undo:
            cursor.execute(statement)


def test_a_failed_receipt_leaves_the_prediction_failed_not_running(celery_worker, tabular,
                                                                    completions_refused_by_the_log) -> None:
    response = client(tabular).post("/api/v1/models/credit/predict", {"inputs": [ROW]}, format="json")
    assert response.status_code >= 500, response.content
    assert "Traceback" not in response.content.decode()
    prediction = Prediction.objects.get()
    assert prediction.status == "failed", prediction.status  # stored so before the caller was told
    assert LogEntry.objects.filter(action="prediction.failed", target_id=str(prediction.pk)).exists()
    usage = UsageDaily.objects.filter(organization=tabular.org, token__isnull=True).first()
    assert usage is None or usage.rows == 0  # the quota reserved for it is given back
