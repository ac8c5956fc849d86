"""Attributions for generated text: SHAP over the caller's message for a span of a stored answer, computed
by the real generation worker on the demo `assistant` (SmolLM2-135M), through the REST API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from inference.models import CompletionExplanation
from tests.inference.factories import bearer_client
from tests.inference.test_openai_api import sdk
from tests.portal.accounts.factories import OrganizationFactory, member, token_for
from tests.waits import until

pytestmark = pytest.mark.django_db(transaction=True)

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
BANANA = [{"role": "user", "content": "Repeat this word: banana"}]


def finished(api, url: str) -> dict:
    return until(lambda: (body := api.get(url).json())["status"] in ("done", "failed") and body,
                 within=600, what=f"{url} to finish")


def test_the_word_that_drives_the_answer_ranks_first_and_the_values_add_up(live_server, assistant) -> None:
    answer = sdk(live_server, assistant).chat.completions.create(model="assistant", messages=BANANA, max_tokens=8,
                                                                 temperature=0)
    text = answer.choices[0].message.content
    assert "banana" in text.lower(), text  # the greedy answer repeats it
    completion = answer.model_extra["steward"]["completion"]
    owner = bearer_client(assistant, "owner")

    asked = owner.post(f"/api/v1/completions/{completion}/explain", {"max_evals": 256}, format="json")  # all of it
    assert asked.status_code == 202, asked.json()
    body = finished(owner, asked.json()["url"])
    assert body["status"] == "done", body
    assert body["span"] == [0, len(text)] and body["span_text"] == text
    assert body["method"] == "exact" and body["evaluations"] == 2 ** len(body["tokens"])  # every coalition fits
    assert body["prompt_as_seen"] is True
    assert abs(body["base_value"] + sum(body["values"]) - body["output"]) < 1e-4 and body["residual"] < 1e-4
    assert abs(sum(w["value"] for w in body["words"]) - sum(body["values"])) < 1e-6  # words sum their tokens
    ranked = sorted(body["words"], key=lambda w: -w["value"])
    assert ranked[0]["word"] == "banana", ranked  # the answer is the word it was asked to repeat
    assert body["output"] > body["base_value"]  # the message makes the answer far more likely
    entry = LogEntry.objects.get(index=body["receipt"]["index"])
    assert entry.action == "completion_explanation.completed" and entry.payload["top_words"][0] == "banana"
    assert CompletionExplanation.objects.get(pk=body["id"]).rows_done > 0

    # a budget below 2^tokens: SHAP's Partition explainer, still additive; the same request, the same values
    def sampled() -> dict:
        return finished(owner, owner.post(f"/api/v1/completions/{completion}/explain", {"max_evals": 16},
                                          format="json").json()["url"])

    first, again = sampled(), sampled()
    assert first["method"] == "partition" and first["evaluations"] <= 16 + 2
    assert abs(first["base_value"] + sum(first["values"]) - first["output"]) < 1e-4
    assert again["values"] == first["values"] and again["seed"] == first["seed"]

    # the compliance evidence of the version carries them (and follows its schema)
    from django.utils import timezone

    from audit.exports import document as evidence_document
    from audit.exports.services import _validate
    from inference.models import ModelVersion

    today = timezone.localdate()
    built = evidence_document.build(version=ModelVersion.objects.get(pk=assistant.version.pk), number=1,
                                    period=(today, today), generated_by="test", excerpt=[])
    _validate(built)
    attributions = built["generative"]["attributions"]
    assert attributions["total"] == 3 and attributions["max_residual"] < 1e-4
    assert body["id"] in [a["id"] for a in attributions["sample"]]
    exact = next(a for a in attributions["sample"] if a["id"] == body["id"])
    assert exact["top_words"][0]["word"] == "banana" and exact["method"] == "exact"
    assert built["serving"]["energy"]["energy_wh"] > 0  # the completion's energy, recorded by the worker


def test_what_cannot_be_explained_is_a_clear_4xx_and_nothing_is_queued(live_server, assistant) -> None:
    answer = sdk(live_server, assistant).chat.completions.create(model="assistant", messages=FRANCE, max_tokens=6,
                                                                 temperature=0)
    completion = answer.model_extra["steward"]["completion"]
    length = len(answer.choices[0].message.content)
    owner = bearer_client(assistant, "owner")
    for body, field in [({"start": 3, "end": 3}, "start"), ({"end": length + 1}, "start"),
                        ({"choice": 4}, "choice"), ({"max_evals": 8}, "max_evals"), ({"rows": 1}, "rows")]:
        refused = owner.post(f"/api/v1/completions/{completion}/explain", body, format="json")
        assert refused.status_code == 400, (body, refused.json())
        assert field in refused.json()["error"]["details"], refused.json()
    # another organisation's completion does not exist for its members
    elsewhere = OrganizationFactory(slug="elsewhere")
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(member('owner', elsewhere), elsewhere, 'owner').secret}")
    hidden = stranger.post(f"/api/v1/completions/{completion}/explain", {}, format="json")
    missing = owner.post("/api/v1/completions/999999/explain", {}, format="json")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"]  # it does not learn it exists
    assert CompletionExplanation.objects.count() == 0
