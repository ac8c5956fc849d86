"""Global explanations through the REST API on a real worker: sampled, ranked, stored, refused clearly."""

from __future__ import annotations

import pytest

from audit.log.models import LogEntry
from inference.models import GlobalExplanation
from tests.inference.factories import bearer_client, csv_upload, serve_model, stored_files
from tests.portal.accounts.factories import OrganizationFactory
from tests.waits import finished

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
BASE = "/api/v1/models/credit/versions/1/global-explanations"




def test_global_explanation_of_an_uploaded_sample(celery_worker, tabular) -> None:
    # given an evaluation file where income decides and region barely matters
    api = bearer_client(tabular, "owner")
    rows = [{"income": income, "region": region} for income in (5, 20, 40, 60, 80, 95) for region in ("north", "south")]
    # when
    response = api.post(BASE, {"dataset": "upload", "file": csv_upload(rows, "eval.csv"), "sample_size": 8},
                        format="multipart")
    # then
    assert response.status_code == 202, response.content
    queued = response.json()
    assert queued["number"] == 1 and queued["rows_total"] == 8 and queued["dataset"] == "eval.csv"
    body = finished(api, queued["url"])
    assert body["status"] == "done", body
    assert body["kind"] == "feature" and body["rows"] == 8 and body["methods"] == ["exact"]
    assert [r["name"] for r in body["ranking"]] == ["income", "region"]
    assert body["ranking"][0]["mean_abs"] > body["ranking"][1]["mean_abs"] >= 0
    assert body["max_residual"] < 1e-6 and body["rows_done"] == 8
    # the mean |SHAP| is the mean of the local explanations' |values| towards each row's predicted label
    assert sum(body["predicted"].values()) == 8
    assert LogEntry.objects.filter(action="global_explanation.completed", target_id=str(body["id"])).exists()
    listed = api.get(BASE).json()
    assert [item["id"] for item in listed] == [body["id"]]


def test_global_explanation_of_served_predictions(celery_worker, tabular) -> None:
    consumer, owner = bearer_client(tabular, "consumer"), bearer_client(tabular, "owner")
    for income in (10, 50, 90):
        response = consumer.post("/api/v1/models/credit/predict", {"inputs": [{"income": income, "region": "north"}]},
                                 format="json")
        assert response.status_code == 200
    response = owner.post(BASE, {"dataset": "predictions", "max_evals": 64}, format="json")
    assert response.status_code == 202, response.content
    body = finished(owner, response.json()["url"])
    assert body["status"] == "done" and body["rows"] == 3 and body["dataset"] == "latest 3 rows served by v1"
    # a consumer may call the model but not read or run global explanations
    assert consumer.get(body["url"]).status_code == 403


def test_text_global_explanation_on_the_real_model(celery_worker, db, sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(slug="reviews"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    api = bearer_client(served, "owner")
    rows = [{"text": t} for t in ("a dull and boring film", "boring , dull , slow", "a wonderful film",
                                  "wonderful acting")]
    response = api.post("/api/v1/models/sentiment/versions/1/global-explanations",
                        {"dataset": "upload", "file": csv_upload(rows, "reviews.csv"), "max_evals": 64},
                        format="multipart")
    assert response.status_code == 202, response.content
    body = finished(api, response.json()["url"], timeout=300)
    assert body["status"] == "done" and body["kind"] == "word", body
    ranked = {r["name"]: r for r in body["ranking"]}
    # words are merged across rows (lower case, punctuation stripped) and counted per row
    assert ranked["dull"]["occurrences"] == 2 and ranked["wonderful"]["occurrences"] == 2
    assert body["ranking"][0]["name"] in {"dull", "boring", "wonderful"}
    assert body["max_residual"] < 1e-6


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"dataset": "nowhere"}, 400, "valid choice"),
    ({"dataset": "upload"}, 400, "Upload an evaluation file"),
    ({"dataset": "predictions"}, 400, "has served no prediction"),
    ({"dataset": "upload", "sample_size": 0}, 400, "sample_size must be between"),
    ({"dataset": "predictions", "max_evals": 5}, 400, "max_evals must be between"),
    ({"dataset": "demo"}, 400, "does not have the features"),
])
def test_bad_requests_are_refused_and_nothing_is_stored(celery_worker, tabular, body, status, needle) -> None:
    api = bearer_client(tabular, "owner")
    before = stored_files("explanations")
    response = api.post(BASE, body, format="json")
    assert response.status_code == status, response.content
    assert needle in response.json()["error"]["message"]
    assert GlobalExplanation.objects.count() == 0
    assert not LogEntry.objects.filter(action="global_explanation.requested").exists()
    assert stored_files("explanations") == before


def test_an_upload_that_does_not_match_the_model_is_refused(celery_worker, tabular) -> None:
    api = bearer_client(tabular, "owner")
    response = api.post(BASE, {"dataset": "upload", "file": csv_upload([{"income": "lots"}], "bad.csv")},
                        format="multipart")
    assert response.status_code == 400
    assert "lacks the columns region" in response.json()["error"]["message"]
    assert GlobalExplanation.objects.count() == 0
