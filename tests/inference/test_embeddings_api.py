"""/v1/embeddings through the official `openai` SDK: a live portal, a real inference worker and the real
weights of the demo `embedder` (all-MiniLM-L6-v2)."""

from __future__ import annotations

import hashlib

import numpy as np
import openai
import pytest

from audit.log.models import LogEntry
from inference.models import Prediction, UsageDaily
from tests.inference.factories import bearer_client, serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import token_for
from tests.waits import patience

pytestmark = pytest.mark.django_db(transaction=True)

# sentence-transformers' documentation gives 0.7553 as all-MiniLM-L6-v2's cosine similarity of these two
SAME_MEAL = ["A man is eating food.", "A man is eating a piece of bread."]
OTHER = "The girl is carrying a baby."


def sdk(live_server, served, role: str = "consumer") -> openai.OpenAI:
    secret = token_for(served.actors[role].user, served.org, role).secret
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0, timeout=patience(120))


def test_embeddings_are_the_models_vectors_with_usage_and_a_receipt(live_server, embedder) -> None:
    client = sdk(live_server, embedder)
    # the SDK asks for base64 by default and decodes it
    raw = client.embeddings.with_raw_response.create(model="embedder", input=[*SAME_MEAL, OTHER])
    answer = raw.parse()
    vectors = np.asarray([d.embedding for d in answer.data])
    assert [d.index for d in answer.data] == [0, 1, 2] and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] == pytest.approx(0.7553, abs=5e-4)
    assert similarity[0, 2] < 0.2 and similarity[0, 1] > similarity[1, 2]
    assert answer.model == f"embedder@{embedder.version.version}"
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 3 * 3
    # float encoding gives the same numbers
    # (the same inputs, so the same batch: float32 rounding would differ with another batch's padding)
    floats = client.embeddings.create(model="embedder", input=[*SAME_MEAL, OTHER], encoding_format="float")
    assert np.allclose([d.embedding for d in floats.data], vectors, atol=1e-6)
    # the receipt commits to each vector without holding it
    steward = answer.model_extra["steward"]
    entry = LogEntry.objects.get(index=steward["receipt"]["index"])
    assert raw.headers["X-Steward-Receipt-Index"] == str(entry.index)
    committed = [o["sha256"] for o in entry.payload["outputs"]]
    assert committed == [hashlib.sha256(np.asarray(v, dtype="<f4").tobytes()).hexdigest() for v in vectors]
    assert all("embedding" not in o for o in entry.payload["outputs"])
    stored = Prediction.objects.get(pk=steward["prediction"])
    assert stored.status == "done" and stored.rows == 3 and len(stored.outputs[0]["embedding"]) == 384
    metered = UsageDaily.objects.get(organization=embedder.org, token__isnull=True)
    assert metered.rows == 6  # the reserved rows of both calls, three each
    assert "embedder" in [m.id for m in client.models.list().data]


def test_bad_embedding_requests_are_refused_by_name_and_leave_nothing(live_server, embedder, tmp_path) -> None:
    client = sdk(live_server, embedder)
    with pytest.raises(openai.BadRequestError) as ids:
        client.embeddings.create(model="embedder", input=[[101, 2023, 102]])
    assert ids.value.body["param"] == "input" and "text" in ids.value.body["message"]
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(model="embedder", input=[])
    assert empty.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as shorter:
        client.embeddings.create(model="embedder", input="hello", dimensions=128)
    assert shorter.value.body["param"] == "dimensions" and "384" in shorter.value.body["message"]
    # longer than the encoder reads (256 tokens): refused on the worker, not cut; the quota given back
    with pytest.raises(openai.BadRequestError) as too_long:
        client.embeddings.create(model="embedder", input=["short", "word " * 400], encoding_format="float")
    assert too_long.value.body["param"] == "input" and "256" in too_long.value.body["message"]
    serve_model(embedder.org, name="credit", task="tabular-classification",
                archive=tiny_tabular_archive(tmp_path / "tiny"))
    with pytest.raises(openai.BadRequestError) as classifier:
        client.embeddings.create(model="credit", input="hello")
    assert classifier.value.body["code"] == "model_not_embedding" and classifier.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nobody", input="hello")
    assert not Prediction.objects.exists(), "refused requests leave nothing stored"
    assert not UsageDaily.objects.filter(organization=embedder.org, rows__gt=0).exists()
    # Steward's classifier API points an embedding model to /v1/embeddings
    answer = bearer_client(embedder).post("/api/v1/models/embedder/predict", {"inputs": ["hello"]}, format="json")
    assert answer.status_code == 400 and "/v1/embeddings" in answer.json()["error"]["message"]


def test_the_playground_compares_texts_and_the_card_says_how_to_call_it(client, embedder) -> None:
    client.force_login(embedder.actors["consumer"].user)
    page = client.get("/models/embedder/")
    assert b"384 dimensions, mean pooling, unit length" in page.content and b"/v1/embeddings" in page.content
    chinese = client.get("/models/embedder/", headers={"accept-language": "zh-hans"}).content.decode()
    assert "384 维，mean 池化，单位长度，文本最长 256 个 token；以 <code>embedder</code> 的名称" in chinese
    answer = client.post("/models/embedder/playground/predict/", {"texts": "\n".join([*SAME_MEAL, OTHER])})
    text = answer.content.decode()
    assert answer.status_code == 200 and 'data-testid="similarities"' in text and "0.755" in text
    prediction = Prediction.objects.get()
    assert f"Prediction #{prediction.pk}" in text
    detail = client.get(f"/predictions/{prediction.pk}/").content.decode()
    assert "384 dimensions" in detail and "Explain" not in detail
