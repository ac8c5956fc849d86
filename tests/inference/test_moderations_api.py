"""/v1/moderations through the official `openai` SDK: a live portal, a real inference worker and the demo
`moderation` model (MiniLM fine-tuned on Davidson et al.'s tweets, built here from data/toxicity)."""

from __future__ import annotations

import csv

import openai
import pytest
import torch
from django.conf import settings

from audit.log.models import LogEntry
from inference.ml.demos import DATA, MODERATION
from inference.models import Prediction
from tests.inference.factories import Served, bearer_client, serve_model
from tests.portal.accounts.factories import OrganizationFactory, token_for
from tests.waits import patience

pytestmark = pytest.mark.django_db(transaction=True)

KIND = "Thank you so much for helping me with my homework, have a lovely evening!"


@pytest.fixture
def moderation(moderation_bytes, celery_worker) -> Served:
    return serve_model(OrganizationFactory(slug="forum"), name="moderation", task="text-classification",
                       archive=moderation_bytes)


def _reference_scores(folder, texts: list[str]) -> list[dict[str, float]]:
    """The model's own probabilities, in this process: what the portal must serve."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        probabilities = model(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).logits.softmax(-1)
    return [{model.config.id2label[i]: float(p) for i, p in enumerate(row)} for row in probabilities]


def test_moderation_reports_the_models_own_categories_and_scores_with_a_receipt(
        live_server, moderation, moderation_build) -> None:
    folder, _ = moderation_build
    with (DATA / "toxicity" / "heldout.csv").open(encoding="utf-8", newline="") as handle:
        abusive = [row["tweet"] for row in csv.DictReader(handle) if row["label"] == "offensive"][:3]
    texts = [KIND, *abusive]
    secret = token_for(moderation.actors["consumer"].user, moderation.org, "consumer").secret
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0, timeout=patience(120))

    raw = client.moderations.with_raw_response.create(input=texts)  # no model named: the organisation's `moderation`
    answer = raw.parse()

    assert answer.model == f"moderation@{moderation.version.version}" and len(answer.results) == len(texts)
    expected = _reference_scores(folder, texts)
    for result, reference in zip(answer.results, expected, strict=True):
        scores = result.category_scores.model_dump(exclude_none=True) | (result.category_scores.model_extra or {})
        assert set(scores) == {"hate", "offensive"}  # what the model scores, and nothing it does not
        assert all(scores[c] == pytest.approx(reference[c], abs=1e-4) for c in scores)
        flags = result.categories.model_dump(exclude_none=True) | (result.categories.model_extra or {})
        assert flags == {c: scores[c] >= settings.MODERATION_FLAG_SCORE for c in scores}
        assert result.flagged == any(flags.values())
    assert not answer.results[0].flagged  # a kind sentence
    assert any(r.flagged for r in answer.results[1:])  # held-out tweets annotators called offensive
    steward = answer.model_extra["steward"]
    entry = LogEntry.objects.get(index=steward["receipt"]["index"])
    assert raw.headers["X-Steward-Receipt-Index"] == str(entry.index)
    assert Prediction.objects.get(pk=steward["prediction"]).rows == len(texts)


def test_a_model_that_is_not_a_moderation_model_and_non_text_input_are_refused(
        live_server, moderation, sentiment_bytes) -> None:
    serve_model(moderation.org, name="sentiment", task="text-classification", archive=sentiment_bytes)
    api = bearer_client(moderation)
    before = Prediction.objects.count()
    answer = api.post("/v1/moderations", {"model": "sentiment", "input": "hello"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "model_not_moderation" and answer.json()["error"]["param"] == "model"
    answer = api.post("/v1/moderations", {"input": [{"type": "image_url", "image_url": {"url": "x"}}]}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "input"
    answer = api.post("/v1/moderations", {"input": "hello", "temperature": 1}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "temperature"
    assert Prediction.objects.count() == before


def test_the_moderation_cards_metrics_are_measured_on_held_out_tweets(moderation_build) -> None:
    _, metrics = moderation_build
    assert metrics["heldout_examples"] == 2000
    assert [metrics[f"heldout_count_{label}"] for label in ("hate", "offensive", "neither")] == [101, 1553, 346]
    assert set(metrics) >= {"heldout_accuracy", "heldout_f1_hate", "heldout_f1_offensive", "heldout_f1_neither"}
    text = MODERATION.metrics_text.format(**metrics)
    assert "F1 hate" in text and "held-out tweets" in text
