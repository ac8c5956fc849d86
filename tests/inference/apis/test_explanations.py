"""Explanations through the REST API on a real worker: stored, receipted, refused clearly when they cannot be."""

from __future__ import annotations

import io
import time

import pytest
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from inference.models import Explanation
from inference.services.registry import alias_move, model_version_transition
from inference.services.uploads import model_version_register
from tests.inference.factories import CARD, bearer_client, serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory, member, token_for
from tests.waits import patience, until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def client(served, role="consumer") -> APIClient:
    return bearer_client(served, role)


def predict(api, rows, **extra):
    response = api.post("/api/v1/models/credit/predict", {"inputs": rows, **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


TWO_ROWS = [{"income": 90, "region": "north"}, {"income": 10, "region": "south"}]


def explain(api, prediction, status: int, **body) -> dict:
    response = api.post(f"/api/v1/predictions/{prediction['id']}/explain", body, format="json")
    assert response.status_code == status, response.content
    return response.json()


def test_explain_a_stored_prediction(celery_worker, tabular) -> None:
    api = client(tabular)
    prediction = predict(api, TWO_ROWS)
    body = explain(api, prediction, 201, row=1, max_evals=100)
    assert body["status"] == "done" and body["method"] == "exact" and body["label"] == "deny"
    assert body["features"] == ["income", "region"] and body["feature_values"] == [10, "south"]
    assert body["residual"] < 1e-6
    label = body["labels"].index(body["label"])
    total = body["base_values"][label] + sum(v[label] for v in body["values"])
    assert total == pytest.approx(body["output"][label], abs=1e-6)
    assert body["output"][label] == pytest.approx(prediction["predictions"][1]["scores"]["deny"], abs=1e-5)
    assert "pushed towards deny: 'income = 10" in body["summary"]
    # stored, linked to its prediction, receipted in the log
    stored = Explanation.objects.get(pk=body["id"])
    assert stored.prediction_id == prediction["id"] and stored.row == 1
    entry = LogEntry.objects.get(index=body["receipt"]["index"])
    assert entry.action == "explanation.completed"
    again = api.get(f"/api/v1/explanations/{body['id']}").json()
    assert again["values"] == body["values"]


def test_predict_with_explain(celery_worker, tabular) -> None:
    answer = predict(client(tabular), [{"income": 70, "region": "south"}], explain=True, max_evals=64)
    assert len(answer["explanations"]) == 1
    explanation = answer["explanations"][0]
    assert explanation["status"] == "done" and explanation["label"] == answer["predictions"][0]["label"]
    assert explanation["residual"] < 1e-6


def test_text_explanation_on_the_real_model(celery_worker, db, sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(slug="reviews"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    api = client(served)
    response = api.post("/api/v1/models/sentiment/predict",
                        {"inputs": ["a dull and boring film"], "explain": True}, format="json")
    assert response.status_code == 200, response.content
    explanation = response.json()["explanations"][0]
    assert explanation["label"] == "NEGATIVE" and explanation["method"] == "exact"
    assert [w["word"] for w in explanation["words"]] == ["a", "dull", "and", "boring", "film"]
    top = max(explanation["words"], key=lambda w: w["value"])["word"]
    assert top in ("dull", "boring") and explanation["residual"] < 1e-6
    assert "pushed towards NEGATIVE" in explanation["summary"]


def test_bad_requests_are_refused_and_nothing_is_stored(celery_worker, tabular, tmp_path) -> None:
    api = client(tabular)
    prediction = predict(api, [{"income": 90, "region": "north"}])
    cases = [
        (f"/api/v1/predictions/{prediction['id']}/explain", {"max_evals": 5}, 400, "between"),
        (f"/api/v1/predictions/{prediction['id']}/explain", {"max_evals": 10**6}, 400, "between"),
        (f"/api/v1/predictions/{prediction['id']}/explain", {"row": 3}, 400, "no row 3"),
        ("/api/v1/predictions/999999/explain", {}, 404, "No such prediction"),
    ]
    for path, body, status, needle in cases:
        response = api.post(path, body, format="json")
        assert response.status_code == status, (path, body, response.content)
        assert needle in response.json()["error"]["message"]
    # another tenant's prediction is not found
    other = OrganizationFactory()
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(member('admin', other), other, 'admin').secret}")
    assert stranger.post(f"/api/v1/predictions/{prediction['id']}/explain", {}, format="json").status_code == 404
    # a tabular model without a background sample cannot be explained
    archive = tiny_tabular_archive(tmp_path / "m", background=False)
    version = model_version_register(actor=tabular.actors["owner"], name="credit", task="tabular-classification",
                                     archive=io.BytesIO(archive), card=CARD)
    model_version_transition(actor=tabular.actors["owner"], version=version, action="submit")
    model_version_transition(actor=tabular.actors["reviewer"], version=version, action="approve", comment="ok")
    alias_move(actor=tabular.actors["owner"], model=version.model, alias="production", version=version)
    bare = predict(api, [{"income": 90, "region": "north"}])
    refused = api.post(f"/api/v1/predictions/{bare['id']}/explain", {}, format="json")
    assert refused.status_code == 409 and "background" in refused.json()["error"]["message"]
    assert Explanation.objects.count() == 0
    assert not LogEntry.objects.filter(action="explanation.requested").exists()


def test_an_explanation_that_outlasts_the_wait_is_answered_202_and_polled(celery_worker, tabular, settings) -> None:
    settings.EXPLAIN_WAIT_SECONDS = 0  # the web only looks once; the worker goes on
    api = client(tabular)
    prediction = predict(api, TWO_ROWS)
    body = explain(api, prediction, 202, row=0, max_evals=100)
    assert body["status"] in ("pending", "running") and "values" not in body
    # the predict-and-explain call waits once for all its rows, not EXPLAIN_WAIT_SECONDS for each
    both = predict(api, TWO_ROWS, explain=True)
    assert [e["status"] in ("pending", "running", "done") for e in both["explanations"]] == [True, True]
    deadline = time.monotonic() + patience(60)
    while (polled := api.get(body["url"]).json())["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, polled
        time.sleep(0.2)
    assert polled["status"] == "done" and polled["residual"] < 1e-6 and polled["feature_values"] == [90, "north"]
    # the worker explains one at a time (each under its own seed): the test ends when it has
    # settled every explanation it was given, not while one still writes to the tables it clears
    until(lambda: not Explanation.objects.filter(status__in=["pending", "running"]).exists(), within=60,
          what="the worker settling every explanation of the test")


def test_a_failed_explanation_is_stored_before_its_waiter_is_told(tabular, caplog) -> None:
    """The task's failure handler marks it failed, then wakes the waiter, which reads the stored state."""
    from inference.models import Prediction
    from inference.services.explanations import explanation_wait
    from inference.tasks import explanation_run_task
    from portal.platform.replies import Awaited, reply_key

    api = client(tabular)
    prediction = Prediction.objects.create(
        organization=tabular.org, model_version=tabular.version, requested_by=tabular.actors["consumer"].user,
        status="done", inputs={"rows": [{"income": 90, "region": "north"}], "subject": ""}, rows=1,
    )
    # as explanation_create leaves it, without queuing a task a worker could run first
    explanation = Explanation.objects.create(organization=tabular.org, prediction=prediction, row=0,
                                             model_version=tabular.version, max_evals=64,
                                             requested_by=tabular.actors["consumer"].user)
    asked = Awaited(explanation, reply_key())
    explanation_run_task.on_failure(RuntimeError("CUDA out of memory"), "t1", (explanation.pk,),
                                    {"reply_to": asked.reply_to}, None)
    began = time.monotonic()
    failed = explanation_wait(asked, timeout=30)
    assert time.monotonic() - began < 5  # woken, not timed out
    # a sentence that says what to do; the exception itself goes to the worker's log, not to the user
    assert failed.status == "failed" and failed.error.startswith("The explanation could not be computed")
    assert "CUDA" not in failed.error and "RuntimeError" not in failed.error
    assert "CUDA out of memory" in caplog.text  # for the operators
    body = api.get(f"/api/v1/explanations/{failed.pk}").json()
    assert body["status"] == "failed" and body["error"] == failed.error
    assert LogEntry.objects.filter(action="explanation.failed", target_id=str(failed.pk)).exists()


def test_a_wide_model_states_the_budget_it_needs_and_explains_reproducibly(celery_worker, tmp_path) -> None:
    """21 features are explained by sampling: a budget under 2 x 21 + 1 is refused before anything is
    queued, in a sentence; a sampled explanation asked for twice gives the same values."""
    from inference.models import Prediction
    from tests.inference.factories import wide_row, wide_tabular_archive

    served = serve_model(OrganizationFactory(), name="wide", task="tabular-classification",
                         archive=wide_tabular_archive(tmp_path / "wide"))
    api = client(served)
    response = api.post("/api/v1/models/wide/predict", {"inputs": [wide_row()]}, format="json")
    assert response.status_code == 200, response.content
    prediction = response.json()
    refused = api.post(f"/api/v1/predictions/{prediction['id']}/explain", {"max_evals": 16}, format="json")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "between 43 and 5000" in error["message"] and "21 features" in error["message"]
    assert "Error" not in error["message"] and error["details"]["max_evals"] == {"min": 43, "max": 5000}
    predictions_before = Prediction.objects.count()
    with_explain = api.post("/api/v1/models/wide/predict", {"inputs": [wide_row()], "explain": True, "max_evals": 16},
                            format="json")
    assert with_explain.status_code == 400 and "between 43" in with_explain.json()["error"]["message"]
    assert Explanation.objects.count() == 0 and Prediction.objects.count() == predictions_before  # nothing stored
    first = explain(api, prediction, 201, max_evals=120)
    again = explain(api, prediction, 201, max_evals=120)
    assert first["method"] == "permutation" and first["id"] != again["id"]
    assert again["values"] == first["values"] and again["seed"] == first["seed"]
    assert first["evaluations"] <= 120 < first["model_rows"]  # coalitions counted against the budget, not rows
    assert first["residual"] < 1e-6
