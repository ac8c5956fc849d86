"""The generation engine on the demo assistant's real weights (SmolLM2-135M), outside the portal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from inference.ml.demos import ASSISTANT, build_cached
from inference.ml.generation import Generator, Sampling


@pytest.fixture(scope="module")
def engine() -> Iterator[Generator]:
    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    generator = Generator(folder, "cpu")
    try:
        yield generator
    finally:
        generator.close()


@pytest.mark.parametrize("temperature", [5e-324, 1e-300, 1e-40, 1e-7])
def test_a_temperature_too_small_to_divide_by_is_greedy_alone_and_in_the_batch(engine, temperature) -> None:
    # found by fuzzing /v1/: logits divided by 1e-40 overflow float32, and the probabilities were NaN
    ids = engine.chat_ids([{"role": "user", "content": "Name a colour."}])
    greedy = engine.generate(ids, Sampling(max_tokens=6, temperature=0)).text
    assert engine.generate(ids, Sampling(max_tokens=6, temperature=temperature)).text == greedy  # the batch
    assert engine.generate(ids, Sampling(max_tokens=6, temperature=temperature, seed=3)).text == greedy  # alone


def test_seeded_sampling_at_a_small_temperature_stays_finite(engine) -> None:
    ids = engine.chat_ids([{"role": "user", "content": "Name a colour."}])
    made = engine.generate(ids, Sampling(max_tokens=6, temperature=1e-5, seed=3, top_p=0.5))
    assert made.completion_tokens > 0 and made.text
