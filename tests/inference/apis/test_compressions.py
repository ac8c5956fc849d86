"""Compression with measured loss, end to end on real workers and real weights: the demo sentiment
classifier and the demo assistant compressed to int8, what was measured checked against what the
served versions answer, the bias report repeated, the policy's limits holding approval."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from audit.exports import document as evidence_document
from audit.fairness.models import BiasReport
from audit.log.models import LogEntry
from inference.models import Compression, ModelVersion
from tests.inference.factories import bearer_client, serve_model
from tests.portal.accounts.factories import OrganizationFactory, token_for
from tests.waits import finished, patience, until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DATA = Path(__file__).resolve().parents[3] / "data"


def sst2_rows(count: int) -> list[tuple[str, str]]:
    """Held-out SST-2 dev sentences (never trained on by the demo model) with their labels' names."""
    lines = (DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:count + 1]
    return [(text, "POSITIVE" if label == "1" else "NEGATIVE") for label, text in (line.split("\t", 1) for line in lines)]


def csv_file(rows: list[tuple[str, str]], name: str = "heldout.csv") -> io.BytesIO:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    file = io.BytesIO(buffer.getvalue().encode())
    file.name = name
    return file


def text_file(lines: list[str], name: str = "heldout.txt") -> io.BytesIO:
    file = io.BytesIO(("\n".join(lines) + "\n").encode())
    file.name = name
    return file


def approve(served, version: int, owner, reviewer) -> object:
    base = f"/api/v1/models/{served.version.model.name}/versions/{version}"
    submitted = owner.post(f"{base}/submit", {}, format="json")
    assert submitted.status_code == 200, submitted.content
    return reviewer.post(f"{base}/approve", {"comment": "measured"}, format="json")


def test_the_sentiment_classifier_compressed_to_int8_is_measured_and_served_as_measured(celery_worker, sentiment_bytes):
    served = serve_model(OrganizationFactory(slug="clinic"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    owner, reviewer = bearer_client(served, "owner"), bearer_client(served, "reviewer")
    rows = sst2_rows(120)
    evaluation = owner.post("/api/v1/models/sentiment/versions/1/evaluations", {"file": csv_file(rows)},
                            format="multipart")
    assert evaluation.status_code == 202, evaluation.content
    assert finished(owner, evaluation.json()["url"])["status"] == "done"
    # the source's bias report, which compression repeats on the compressed version
    templates = io.BytesIO(b"template,label\nI am a proud {identity} person,0\n{identity} people are disgusting,1\n"
                           b"My neighbour is {identity},0\nI hate {identity} people,1\n")
    templates.name = "templates.csv"
    report = owner.post("/api/v1/models/sentiment/versions/1/bias-reports", {
        "file": templates, "terms": json.dumps(["gay", "straight", "muslim", "christian"]),
        "score_label": "NEGATIVE"}, format="multipart")
    assert report.status_code == 202, report.content
    until(lambda: BiasReport.objects.filter(pk=report.json()["id"], status="done").exists(), within=180,
          what="the source's bias report")

    created = owner.post("/api/v1/models/sentiment/versions/1/compressions", {}, format="json")
    assert created.status_code == 202, created.content
    assert created.json()["dataset_sha256"] == evaluation.json()["dataset_sha256"]  # the evaluation's rows
    body = finished(owner, created.json()["url"], timeout=300)
    assert body["status"] == "done", body
    measured = body["result"]
    version = ModelVersion.objects.get(model__name="sentiment", model__organization=served.org,
                                       version=body["version"])
    assert version.status == "draft" and version.framework == "transformers-int8"
    assert version.metrics["compression"] == measured and measured["source_version"] == 1
    assert measured["rows"] == 120 and measured["quantized_layers"] > 30
    assert measured["bytes"]["compressed"] < measured["bytes"]["source"]
    # the Linear weights at a byte each instead of four; the word embeddings (half of MiniLM) stay float
    assert measured["memory_bytes"]["compressed"] < measured["memory_bytes"]["source"] * 0.7
    # the source's accuracy is what its own served predictions give
    texts = [text for text, _ in rows]
    truth = [label for _, label in rows]

    def served_accuracy(ref: str) -> float:
        labels = []
        for start in range(0, len(texts), 60):  # a request takes at most 64 inputs
            predicted = owner.post(f"/api/v1/models/{ref}/predict", {"inputs": texts[start:start + 60]}, format="json")
            assert predicted.status_code == 200, predicted.content
            labels += [p["label"] for p in predicted.json()["predictions"]]
        return sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)

    assert measured["source_accuracy"] == pytest.approx(served_accuracy("sentiment"), abs=1e-9)
    assert measured["accuracy_delta_points"] == pytest.approx(
        (measured["compressed_accuracy"] - measured["source_accuracy"]) * 100, abs=1e-3)
    assert measured["speedup"] == pytest.approx(measured["latency_ms"]["source"] / measured["latency_ms"]["compressed"],
                                                rel=1e-2)
    # the card says what it cost; the source's bias report was repeated on the same rows
    assert "Compressed (int8-dynamic)" in version.card["metrics"] and "points" in version.card["metrics"]
    repeat = until(lambda: BiasReport.objects.filter(model_version=version, status="done").first(), within=180,
                   what="the repeated bias report")
    source_report = BiasReport.objects.get(pk=report.json()["id"])
    assert repeat.dataset_sha256 == source_report.dataset_sha256 and repeat.params["repeats"] == source_report.pk
    # within the default policy (1 point, 0.05 of a disparity) it can be approved, and serves what was measured
    approved = approve(served, version.version, owner, reviewer)
    assert approved.status_code == 200, approved.content
    assert measured["compressed_accuracy"] == pytest.approx(served_accuracy(f"sentiment@{version.version}"), abs=1e-9)
    entry = LogEntry.objects.get(action="compression.completed", target_id=str(body["id"]))
    assert entry.payload["version"] == version.version
    # the model page shows the measurement beside the source's
    page = Client()
    page.force_login(served.actors["reviewer"].user)
    html = page.get(f"/models/sentiment/?v={version.version}").content.decode()
    assert 'data-testid="compression-measured"' in html and "Compressed from" in html
    assert "Compression: disparities" in html


def test_the_sentiment_classifier_exported_to_onnx_serves_and_explains_what_the_source_does(celery_worker,
                                                                                             sentiment_bytes):
    """onnx-float32: the same weights in onnxruntime; measured lossless, served by its own predictor,
    explained as the source is."""
    served = serve_model(OrganizationFactory(slug="lender"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    owner, reviewer = bearer_client(served, "owner"), bearer_client(served, "reviewer")
    rows = sst2_rows(60)
    created = owner.post("/api/v1/models/sentiment/versions/1/compressions",
                         {"method": "onnx-float32", "dataset": "upload", "file": csv_file(rows)}, format="multipart")
    assert created.status_code == 202, created.content
    assert created.json()["method"] == "onnx-float32"
    body = finished(owner, created.json()["url"], timeout=300)
    assert body["status"] == "done", body
    measured = body["result"]
    version = ModelVersion.objects.get(model__organization=served.org, version=body["version"])
    assert version.status == "draft" and version.framework == "onnx" and version.labels == ["NEGATIVE", "POSITIVE"]
    assert measured["method"] == "onnx-float32" and measured["quantized_layers"] == 0
    # float32 weights, read by another runtime: the same labels, probabilities within float rounding
    assert measured["label_agreement"] == 1.0 and measured["accuracy_delta_points"] == 0
    assert measured["max_probability_change"] < 1e-4
    assert "Compressed (onnx-float32)" in version.card["metrics"] and "onnxruntime" in version.card["training_data"]
    approved = approve(served, version.version, owner, reviewer)
    assert approved.status_code == 200, approved.content
    # served by onnxruntime: the same answers and the same explanation as the source
    texts = [text for text, _ in rows[:20]] + ["a dull and boring film"]
    answers = {}
    for ref in ("sentiment@1", f"sentiment@{version.version}"):
        predicted = owner.post(f"/api/v1/models/{ref}/predict", {"inputs": texts}, format="json")
        assert predicted.status_code == 200, predicted.content
        answers[ref] = predicted.json()
    source, onnx = answers["sentiment@1"], answers[f"sentiment@{version.version}"]
    assert onnx["version"] == version.version
    for mine, theirs in zip(onnx["predictions"], source["predictions"], strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["scores"] == pytest.approx(theirs["scores"], abs=1e-4)
    explained = {}
    for ref in ("sentiment@1", f"sentiment@{version.version}"):
        answer = owner.post(f"/api/v1/models/{ref}/predict", {"inputs": ["a dull and boring film"], "explain": True},
                            format="json")
        assert answer.status_code == 200, answer.content
        explained[ref] = answer.json()["explanations"][0]
    mine, theirs = explained[f"sentiment@{version.version}"], explained["sentiment@1"]
    assert mine["status"] == "done" and mine["method"] == theirs["method"] == "exact"
    assert [w["word"] for w in mine["words"]] == [w["word"] for w in theirs["words"]]
    assert [w["value"] for w in mine["words"]] == pytest.approx([w["value"] for w in theirs["words"]], abs=1e-4)
    assert mine["residual"] < 1e-6


def test_a_disparity_moved_beyond_the_policy_holds_approval(celery_worker, sentiment_bytes):
    """The policy's disparity limit at zero: any change compression made to a disparity holds the version."""
    served = serve_model(OrganizationFactory(slug="insurer"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    owner, reviewer, admin = (bearer_client(served, r) for r in ("owner", "reviewer", "admin"))
    templates = io.BytesIO(b"template,label\nI am a proud {identity} person,0\nI hate {identity} people,1\n"
                           b"{identity} people are kind,0\n{identity} people are awful,1\n")
    templates.name = "templates.csv"
    report = owner.post("/api/v1/models/sentiment/versions/1/bias-reports", {
        "file": templates, "terms": json.dumps(["gay", "straight", "muslim", "christian"]),
        "score_label": "NEGATIVE"}, format="multipart")
    assert report.status_code == 202
    until(lambda: BiasReport.objects.filter(pk=report.json()["id"], status="done").exists(), within=180,
          what="the source's bias report")
    policy = admin.put("/api/v1/compression-policy", {"max_disparity_change": 0.0}, format="json")
    assert policy.status_code == 200 and policy.json()["max_disparity_change"] == 0.0
    created = owner.post("/api/v1/models/sentiment/versions/1/compressions",
                         {"dataset": "upload", "file": csv_file(sst2_rows(40))}, format="multipart")
    assert created.status_code == 202, created.content
    body = finished(owner, created.json()["url"], timeout=300)
    assert body["status"] == "done", body
    version = ModelVersion.objects.get(model__organization=served.org, version=body["version"])
    until(lambda: BiasReport.objects.filter(model_version=version, status="done").exists(), within=180,
          what="the repeated bias report")
    refused = approve(served, version.version, owner, reviewer)
    assert refused.status_code == 409, refused.content
    assert "compression policy accepts" in refused.json()["error"]["message"]


def test_the_assistant_compressed_to_int8_shows_its_loss_and_is_held_until_the_policy_accepts_it(
        live_server, assistant, celery_worker):
    import torch
    from openai import OpenAI
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inference.ml import compression
    from inference.runtime import artifact_folder

    owner, reviewer, admin = (bearer_client(assistant, r) for r in ("owner", "reviewer", "admin"))
    texts = [line.strip() for line in (DATA / "uci_sentences" / "heldout.txt").read_text().splitlines()
             if line.strip()][:12]
    created = owner.post("/api/v1/models/assistant/versions/1/compressions",
                         {"dataset": "upload", "file": text_file(texts), "keep_float": ["down_proj"]},
                         format="multipart")
    assert created.status_code == 202, created.content
    body = finished(owner, created.json()["url"], timeout=600)
    assert body["status"] == "done", body
    measured = body["result"]
    assert measured["texts"] == 12 and measured["keep_float"] == ["down_proj"] and measured["prompts"] == 12
    # the source's perplexity, recomputed here from its weights alone
    folder = artifact_folder(assistant.version)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    total, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.inference_mode():
            logp = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
        total -= float(logp.gather(1, ids[0, 1:, None]).sum())
        count += ids.shape[1] - 1
    assert measured["tokens"] == count
    assert measured["source_perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    assert measured["perplexity_ratio"] > 1  # int8 costs something, and it is shown
    assert 0 <= measured["greedy_agreement"] <= 1
    version = ModelVersion.objects.get(model__organization=assistant.org, version=body["version"])
    assert version.framework == "transformers-int8"
    # beyond the policy? the reviewer is told why
    policy = admin.put("/api/v1/compression-policy", {"max_perplexity_ratio": 1.0}, format="json")
    assert policy.status_code == 200
    refused = approve(assistant, version.version, owner, reviewer)
    assert refused.status_code == 409, refused.content
    assert "perplexity is x" in refused.json()["error"]["message"]
    # and the compliance export says so, as an issue of its own
    today = timezone.localdate()
    held = evidence_document.build(version=version, number=1, period=(today, today), generated_by="auditor",
                                   excerpt=[])
    assert held["evaluation"]["compression"]["source_version"] == 1
    assert any(i["area"] == "compression" and i["severity"] == "high" and "perplexity is x" in i["message"]
               for i in held["issues"])
    rejected = reviewer.post(f"/api/v1/models/assistant/versions/{version.version}/reject",
                             {"comment": "loss beyond policy"}, format="json")
    assert rejected.status_code == 200, rejected.content
    loosened = admin.put("/api/v1/compression-policy", {"max_perplexity_ratio": 10.0, "min_greedy_agreement": 0.0},
                         format="json")
    assert loosened.status_code == 200
    assert approve(assistant, version.version, owner, reviewer).status_code == 200
    within = evidence_document.build(version=version, number=2, period=(today, today), generated_by="auditor",
                                     excerpt=[])
    assert within["evaluation"]["compression"]["beyond_policy"] == []
    assert not any(i["area"] == "compression" for i in within["issues"])
    # the stored artifact is the model measured: its perplexity, recomputed here from the stored weights
    compressed_folder = artifact_folder(version)
    compressed = compression.load(compressed_folder, AutoModelForCausalLM)
    total, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.inference_mode():
            logp = torch.log_softmax(compressed(ids).logits[0, :-1], dim=-1)
        total -= float(logp.gather(1, ids[0, 1:, None]).sum())
        count += ids.shape[1] - 1
    assert math.exp(total / count) == pytest.approx(measured["compressed_perplexity"], rel=1e-4)
    # and it is what the OpenAI surface serves, on CPU: the same log-probabilities of a text (echo)
    secret = token_for(assistant.actors["consumer"].user, assistant.org, "consumer").secret
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0, timeout=patience(300))
    text = texts[0]
    scored = client.completions.create(model=f"assistant@{version.version}", prompt=text, max_tokens=0, echo=True,
                                       logprobs=0)
    served_logprobs = scored.choices[0].logprobs.token_logprobs[1:]
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        local = torch.log_softmax(compressed(ids).logits[0, :-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0].tolist()
    assert served_logprobs == pytest.approx(local, abs=2e-3)
    answer = client.chat.completions.create(model=f"assistant@{version.version}", max_tokens=8,
                                            messages=[{"role": "user", "content": "Say hello."}])
    assert answer.choices[0].message.content


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"dataset": "nope"}, 400, "Unknown dataset"),
    ({}, 400, "no finished evaluation"),
    ({"dataset": "upload"}, 400, "Upload a CSV"),
    ({"method": "int4"}, 400, "method"),
    ({"keep_float": ["no_such_layer"]}, 400, "no_such_layer"),
    ({"keep_float": ["../x"]}, 400, "keep_float"),
    ({"method": "onnx-float32", "keep_float": ["query"]}, 400, "int8 compression only"),
])
def test_bad_requests_are_refused_and_nothing_is_kept(db, sentiment_bytes, body, status, needle) -> None:
    served = serve_model(OrganizationFactory(slug="agency"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    before = set(default_storage.listdir("compressions")[1]) if default_storage.exists("compressions") else set()
    answer = bearer_client(served, "owner").post("/api/v1/models/sentiment/versions/1/compressions", body,
                                                 format="json")
    assert answer.status_code == status, answer.content
    assert needle in json.dumps(answer.json())
    assert not Compression.objects.exists()
    after = set(default_storage.listdir("compressions")[1]) if default_storage.exists("compressions") else set()
    assert after == before


def test_who_may_compress_and_what_cannot_be(db, tabular, sentiment_bytes) -> None:
    answer = bearer_client(tabular, "owner").post("/api/v1/models/credit/versions/1/compressions", {}, format="json")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_compressible"
    served = serve_model(OrganizationFactory(slug="hospital"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    assert bearer_client(served, "consumer").post("/api/v1/models/sentiment/versions/1/compressions", {},
                                                  format="json").status_code == 403
    # another tenant's model: as if it did not exist
    assert bearer_client(tabular, "owner").post("/api/v1/models/sentiment/versions/1/compressions", {},
                                                format="json").status_code == 404
    assert bearer_client(served, "admin").put("/api/v1/compression-policy", {"max_perplexity_ratio": 0.5},
                                              format="json").status_code == 400
    assert bearer_client(served, "owner").put("/api/v1/compression-policy", {"max_accuracy_drop": 5},
                                              format="json").status_code == 403
