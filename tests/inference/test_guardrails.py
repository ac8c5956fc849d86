"""Guardrail policies end to end: set through the API (audited, refused when they cannot run), applied
by the real generation worker with the real weights of the demo `assistant` (SmolLM2-135M) and the demo
`moderation` model (MiniLM fine-tuned on Davidson et al.'s tweets), observed through the `openai` SDK."""

from __future__ import annotations

import csv

import openai
import pytest
import torch
from django.conf import settings

from audit.log.models import LogEntry
from inference.ml.demos import ASSISTANT, DATA, build_cached
from inference.models import Completion, GuardrailPolicy, ModelAlias, UsageDaily
from inference.services.guard_runs import sentences
from tests.inference.factories import Served, bearer_client, serve_model
from tests.inference.test_openai_api import sdk

pytestmark = pytest.mark.django_db(transaction=True)

SEA = [{"role": "user", "content": "Write three short sentences about the sea."}]


@pytest.fixture
def guarded(assistant, moderation_bytes) -> Served:
    """The assistant, and the demo moderation model served in the same organisation."""
    serve_model(assistant.org, name="moderation", task="text-classification", archive=moderation_bytes)
    return assistant


def _scores(folder, texts: list[str]) -> list[dict[str, float]]:
    """The moderation model's own probabilities, computed here: what the guard must have used."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        probabilities = model(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).logits.softmax(-1)
    return [{model.config.id2label[i]: float(p) for i, p in enumerate(row)} for row in probabilities]


def test_policies_are_set_by_whom_they_may_be_audited_and_refused_when_they_cannot_run(guarded) -> None:
    admin, consumer = bearer_client(guarded, "admin"), bearer_client(guarded, "consumer")
    owner, reviewer = bearer_client(guarded, "owner"), bearer_client(guarded, "reviewer")
    assert consumer.get("/api/v1/guardrails").status_code == 404  # none yet: said in a sentence
    assert consumer.put("/api/v1/guardrails", {"mask_pii": True}, format="json").status_code == 403

    saved = admin.put("/api/v1/guardrails", {"mask_pii": True, "input_action": "block", "input_threshold": 0.8,
                                            "blocked_patterns": [r"(?i)project\s+falcon"]}, format="json")
    assert saved.status_code == 200, saved.json()
    assert saved.json()["revision"] == 1 and saved.json()["scope"] == "organisation"
    entry = LogEntry.objects.filter(action="guardrail.policy_set").latest("index")
    assert entry.payload["changed"]["input_action"] == {"from": "off", "to": "block"}
    assert consumer.get("/api/v1/guardrails").json()["blocked_patterns"] == [r"(?i)project\s+falcon"]

    for body, field in [({"blocked_patterns": [r"(a)\1"]}, "blocked_patterns"),
                        ({"input_threshold": 0}, "input_threshold"),
                        ({"moderation_model": "assistant"}, "moderation_model"),
                        ({"moderation_model": "nowhere"}, "moderation_model"),
                        ({"categories": ["violence"]}, "categories"),
                        ({"input_action": "maybe"}, "input_action"),
                        ({"mask_pii": True, "surprise": 1}, "surprise")]:
        refused = admin.put("/api/v1/guardrails", body, format="json")
        assert refused.status_code == 400, (body, refused.json())
        assert field in refused.json()["error"]["details"], refused.json()
    assert GuardrailPolicy.objects.get(organization=guarded.org, model=None).revision == 1  # nothing half written

    # a model's own policy: reviewers and admins set it, owners (whose model it is) do not
    url = "/api/v1/models/assistant/guardrails"
    assert owner.put(url, {"output_action": "block"}, format="json").status_code == 403
    own = reviewer.put(url, {"output_action": "flag", "max_output_tokens": 8}, format="json")
    assert own.status_code == 200 and own.json()["scope"] == "model" and own.json()["mask_pii"] is False
    shown = consumer.get(url).json()
    assert shown["own"]["id"] == shown["effective"]["id"] == own.json()["id"]
    assert reviewer.delete(url).status_code == 204
    after = consumer.get(url).json()
    assert after["own"] is None and after["effective"]["scope"] == "organisation"
    assert reviewer.delete(url).status_code == 404
    assert [e.action for e in LogEntry.objects.filter(target_type="inference.GuardrailPolicy").order_by("index")] == [
        "guardrail.policy_set", "guardrail.policy_set", "guardrail.policy_removed"]

    # a policy that moderates with a model no longer in service refuses to generate unchecked
    ModelAlias.objects.filter(model__organization=guarded.org, model__name="moderation").delete()
    answer = bearer_client(guarded).post("/v1/chat/completions", {"model": "assistant", "messages": SEA,
                                                                  "max_tokens": 4}, format="json")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "guardrail_unavailable"
    assert "moderation" in answer.json()["error"]["message"]


def test_pii_is_masked_before_the_model_sees_it_and_the_answer_is_capped(live_server, guarded) -> None:
    admin = bearer_client(guarded, "admin")
    assert admin.put("/api/v1/guardrails", {"mask_pii": True, "max_output_tokens": 6}, format="json").status_code == 200
    said = [{"role": "user", "content": "My e-mail is jane.doe@example.com and my card is 4111 1111 1111 1111. "
                                        "Repeat my e-mail address."}]
    answer = sdk(live_server, guarded).chat.completions.create(model="assistant", messages=said, max_tokens=40,
                                                               temperature=0)
    guard = answer.model_extra["steward"]["guard"]
    masking = next(d for d in guard["decisions"] if d["check"] == "pii")
    assert masking["action"] == "masked" and masking["masked"] == {"CARD": 1, "EMAIL": 1}
    limit = next(d for d in guard["decisions"] if d["check"] == "max_output_tokens")
    assert limit == {"stage": "output", "check": "max_output_tokens", "action": "limited", "asked": 40, "limit": 6}
    assert answer.usage.completion_tokens <= 6 and answer.choices[0].finish_reason in ("length", "stop")
    assert "jane.doe" not in answer.choices[0].message.content

    # the model was given the masked text: the prompt's tokens are those of the masked messages
    from transformers import AutoTokenizer

    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    masked = [{"role": "user", "content": "My e-mail is [EMAIL] and my card is [CARD]. Repeat my e-mail address."}]
    ids = AutoTokenizer.from_pretrained(folder).apply_chat_template(masked, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert answer.usage.prompt_tokens == len(ids)
    stored = Completion.objects.get(pk=answer.model_extra["steward"]["completion"])
    assert stored.prompt == masked and stored.guard["decisions"] == guard["decisions"]
    entry = LogEntry.objects.get(index=answer.model_extra["steward"]["receipt"]["index"])
    assert entry.payload["guard"]["revision"] == 1 and entry.payload["parameters"]["max_tokens"] == 6


def _most_hateful(folder) -> tuple[str, float]:
    with (DATA / "toxicity" / "heldout.csv").open(encoding="utf-8", newline="") as handle:
        hateful = [row["tweet"] for row in csv.DictReader(handle) if row["label"] == "hate"][:40]
    scored = [(text, scores["hate"]) for text, scores in zip(hateful, _scores(folder, hateful), strict=True)
              if len(sentences(text)) == 1]  # one sentence: the guard scores it whole
    return max(scored, key=lambda pair: pair[1])


def test_a_hateful_prompt_is_refused_with_content_filter_and_the_refusal_is_in_the_evidence(
        live_server, guarded, moderation_build, celery_worker, tmp_path) -> None:
    admin = bearer_client(guarded, "admin")
    assert admin.put("/api/v1/guardrails", {"input_action": "block", "input_threshold": 0.5},
                     format="json").status_code == 200
    text, score = _most_hateful(moderation_build[0])
    assert score >= 0.5
    client = sdk(live_server, guarded)
    def spent() -> int:  # the organisation's tokens of the day, reserved or used
        return sum(UsageDaily.objects.filter(organization=guarded.org, token__isnull=True).values_list("tokens", flat=True))

    before = spent()

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": text}], max_tokens=16)
    error = refused.value.body
    assert error["code"] == "content_filter" and error["param"] == "messages"
    assert "guardrail policy" in error["message"] and "hate" in error["message"]
    decision = next(d for d in error["steward"]["guard"]["decisions"] if d["check"] == "moderation")
    assert decision["action"] == "blocked" and decision["scores"]["hate"] == pytest.approx(score, abs=1e-3)
    stored = Completion.objects.get(pk=error["steward"]["completion"])
    assert stored.guard_outcome == "blocked" and stored.choices == [] and stored.completion_tokens == 0
    assert LogEntry.objects.get(index=error["steward"]["receipt_index"]).action == "completion.blocked"
    # no answer was given (the model's first words, written while the prompt was checked, were dropped):
    # every token reserved is given back
    assert spent() == before

    # streamed, the refusal is the stream's error event, and the SDK raises it the same way; not a word of
    # the answer the model had begun reaches the caller
    received: list[str] = []
    with pytest.raises(openai.APIError) as streamed:
        for chunk in client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": text}],
                                                    max_tokens=16, stream=True):
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "guardrail policy" in str(streamed.value) and "".join(received) == ""

    # a kind prompt passes, with the scores it had
    kind = client.chat.completions.create(model="assistant", messages=SEA, max_tokens=4)
    passed = next(d for d in kind.model_extra["steward"]["guard"]["decisions"] if d["check"] == "moderation")
    assert passed["action"] == "passed" and passed["scores"]["hate"] < 0.5

    # the compliance export carries the policy, its change, the decisions and Art. 50 / 53 items
    from tests.audit.exports.test_exports_api import check_bundle, export_of

    _, data = export_of(bearer_client(guarded, "auditor"), "assistant", guarded.version.version)
    generative = check_bundle(data, tmp_path, model="assistant")["generative"]
    guard = generative["guardrails"]
    assert guard["policy"]["input"] == {"action": "block", "threshold": 0.5} and guard["policy"]["revision"] == 1
    assert [c["action"] for c in guard["changes"]] == ["guardrail.policy_set"]
    assert guard["decisions"] == {"completions": 3, "blocked": 2, "passed": 1, "flagged": 0, "filtered": 0,
                                       "unchecked": 0}
    assert {c["outcome"] for c in guard["sample"]} == {"blocked"} and len(guard["sample"]) == 2
    assert generative["marking"]["marked"] and "X-Steward-AI-Generated" in generative["marking"]["how"]
    assert any("copyright" in item for item in generative["gpai_documentation"]["provider_only"])
    import io
    import zipfile

    decisions = zipfile.ZipFile(io.BytesIO(data)).read("tables/guardrail_decisions.csv").decode()
    assert decisions.count("blocked") >= 2 and "moderation" in decisions


def test_an_output_is_stopped_mid_stream_at_the_sentence_the_policy_refuses(
        live_server, guarded, moderation_build) -> None:
    client = sdk(live_server, guarded)
    whole = client.chat.completions.create(model="assistant", messages=SEA, max_tokens=80, temperature=0)
    said = sentences(whole.choices[0].message.content)
    assert len(said) >= 2, said  # the greedy answer to this prompt has several sentences
    # a pattern that the second sentence holds and the first does not
    word = next(w.strip(".,;'") for w in said[1].split() if len(w) > 5 and w.lower() not in said[0].lower())
    reviewer = bearer_client(guarded, "reviewer")
    assert reviewer.put("/api/v1/models/assistant/guardrails",
                        {"output_action": "flag", "output_threshold": 0.99, "blocked_patterns": [word]},
                        format="json").status_code == 200

    chunks = list(client.chat.completions.create(model="assistant", messages=SEA, max_tokens=80, temperature=0,
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == said[0] and word not in text  # only what passed was ever sent
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["content_filter"]
    guard = chunks[-1].model_extra["steward"]["guard"] if chunks[-1].choices else next(
        c.model_extra["steward"]["guard"] for c in chunks if c.model_extra.get("steward"))
    assert guard["outcome"] == "filtered" and guard["scope"] == "model"
    stopped = next(d for d in guard["decisions"] if d["action"] == "stopped")
    assert stopped["check"] == "pattern" and word in stopped["sentence"]
    # the sentence that passed was scored by the moderation model, with the scores it really has
    checked = next(d for d in guard["decisions"] if d.get("sentences"))
    reference = _scores(moderation_build[0], [said[0].strip()])[0]
    assert checked["max_scores"]["hate"] == pytest.approx(reference["hate"], abs=1e-3)
    stored = Completion.objects.get(pk=int(chunks[0].id.split("-")[1]))
    assert stored.guard_outcome == "filtered" and stored.choices[0]["finish_reason"] == "content_filter"
    assert stored.choices[0]["text"] == said[0]
