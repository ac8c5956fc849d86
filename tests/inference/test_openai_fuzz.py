"""Bodies drawn by hypothesis against the OpenAI-compatible API, with real workers and real weights:
whatever comes in, the answer is OpenAI's shape, never a 5xx, and a refused request leaves nothing
stored. (Steward's own API is fuzzed by schemathesis in CI; /v1/ follows OpenAI's reference instead
of Steward's schema, so it is fuzzed here.)"""

from __future__ import annotations

import json
import os

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from inference.models import Completion, Prediction
from tests.portal.accounts.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)

# a fixed sequence in CI (derandomized); FUZZ_EXAMPLES draws more of it, FUZZ_RANDOM=1 other ones, when hunting
FUZZ = hypothesis_settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), deadline=None,
                           derandomize=not os.environ.get("FUZZ_RANDOM"),
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=8),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
small = st.one_of(st.integers(-2, 3), junk)  # max_tokens and n stay small: a valid body generates a few tokens
text = st.text(min_size=1, max_size=40)
message = st.one_of(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "wizard"]),
                                           "content": st.one_of(text, junk)}), junk)
messages = st.one_of(st.lists(message, min_size=0, max_size=3),
                     st.just([{"role": "user", "content": "Say hi."}]), junk)


def optional(**fields: st.SearchStrategy) -> st.SearchStrategy:
    """A body with each field present or not."""
    return st.fixed_dictionaries({}, optional=fields)


common = {
    "model": st.sampled_from(["assistant", "assistant@1", "assistant@production", "nobody", "", "embedder"]) | junk,
    "max_tokens": small, "temperature": st.one_of(st.floats(-1, 3), junk), "top_p": st.one_of(st.floats(-0.5, 1.5), junk),
    "n": small, "stop": st.one_of(text, st.lists(text, max_size=5), junk), "seed": st.one_of(st.integers(), junk),
    "stream": st.one_of(st.booleans(), junk), "stream_options": st.one_of(st.fixed_dictionaries(
        {"include_usage": st.booleans()}), junk), "user": st.one_of(text, junk), "tools": junk, "surprise": junk,
}
chat_bodies = optional(messages=messages, max_completion_tokens=small, logprobs=st.one_of(st.booleans(), junk),
                       top_logprobs=small, **common)
text_bodies = optional(prompt=st.one_of(text, st.lists(text, max_size=2), junk), echo=st.one_of(st.booleans(), junk),
                       logprobs=small, **common)
embedding_bodies = optional(model=common["model"], input=st.one_of(text, st.lists(text, max_size=3), junk),
                            encoding_format=st.one_of(st.sampled_from(["float", "base64", "hex"]), junk),
                            dimensions=st.one_of(st.sampled_from([384, 128]), junk), user=common["user"], surprise=junk)


# Valid bodies (a few tokens each), then each with up to two fields replaced by junk or dropped: most draws
# of the bodies above fail validation at once, these reach the worker and the stream.
valid_common = {"max_tokens": st.integers(1, 3), "temperature": st.floats(0, 1.5), "top_p": st.floats(0.1, 1),
                "n": st.integers(1, 2), "stop": st.one_of(text, st.lists(text, max_size=4)), "seed": st.integers(0, 2**31),
                "stream": st.booleans(), "user": text}
valid_chat = st.fixed_dictionaries(
    {"model": st.sampled_from(["assistant", "assistant@production"]),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": text}),
                          min_size=1, max_size=2).map(lambda m: [*m, {"role": "user", "content": "Say hi."}])},
    optional={**valid_common, "logprobs": st.booleans()})
valid_text = st.fixed_dictionaries({"model": st.just("assistant"), "prompt": text},
                                   optional={**valid_common, "logprobs": st.integers(0, 2)})
valid_embedding = st.fixed_dictionaries({"model": st.just("embedder"), "input": st.one_of(text, st.lists(text, min_size=1, max_size=3))},
                                        optional={"encoding_format": st.sampled_from(["float", "base64"]), "user": text})


def mutated(valid: st.SearchStrategy) -> st.SearchStrategy:
    def change(body: dict, damage: dict, drop: list[str]) -> dict:
        return {k: v for k, v in {**body, **damage}.items() if k not in drop}

    keys = ["model", "messages", "prompt", "input", "max_tokens", "n", "stop", "stream", "temperature", "logprobs"]
    return st.builds(change, valid, st.dictionaries(st.sampled_from(keys), junk, max_size=2),
                     st.lists(st.sampled_from(keys), max_size=1))


def answer(client: Client, secret: str, path: str, body: dict) -> tuple[int, bytes]:
    response = client.post(path, data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {secret}")
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, content


def check(status: int, content: bytes, before: int, after: int) -> None:
    assert status < 500, (status, content[:500])
    if status >= 400:
        error = json.loads(content)["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"].endswith(".") and "Traceback" not in error["message"]
        assert after == before, "a refused request left a row behind"
    elif content.startswith(b"data: "):
        assert content.rstrip().endswith(b"data: [DONE]"), content[-200:]
    else:
        assert json.loads(content)["object"] in ("chat.completion", "text_completion", "list")


def test_chat_and_text_completions_answer_any_body_in_openai_shape(assistant, settings) -> None:
    settings.GENERATION_DEFAULT_MAX_TOKENS = 3  # a body without max_tokens generates a few tokens, not hundreds
    secret = token_for(assistant.actors["consumer"].user, assistant.org, "consumer").secret
    client = Client()

    @FUZZ
    @given(path_body=st.one_of(
        st.tuples(st.just("/v1/chat/completions"), st.one_of(valid_chat, mutated(valid_chat), chat_bodies)),
        st.tuples(st.just("/v1/completions"), st.one_of(valid_text, mutated(valid_text), text_bodies))))
    def run(path_body: tuple[str, dict]) -> None:
        path, body = path_body
        before = Completion.objects.count()
        status, content = answer(client, secret, path, body)
        check(status, content, before, Completion.objects.count())
        seen.append(status)

    seen: list[int] = []
    run()
    assert {200, 400} <= set(seen), "the draws reach the worker and the validation both"


def test_embeddings_answer_any_body_in_openai_shape(embedder) -> None:
    secret = token_for(embedder.actors["consumer"].user, embedder.org, "consumer").secret
    client = Client()

    @FUZZ
    @given(body=st.one_of(valid_embedding, mutated(valid_embedding), embedding_bodies))
    def run(body: dict) -> None:
        before = Prediction.objects.count()
        status, content = answer(client, secret, "/v1/embeddings", body)
        check(status, content, before, Prediction.objects.count())
        seen.append(status)

    seen: list[int] = []
    run()
    assert {200, 400} <= set(seen), "the draws reach the worker and the validation both"
