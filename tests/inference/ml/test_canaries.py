"""Canary exposure (Carlini et al. 2019) and the bound epsilon implies: the arithmetic against exact
ranks and a numerical integral, and the log-perplexities against the shared token likelihood on the
real SmolLM2 weights."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.ml import canaries


def test_counted_exposure_is_the_rank_among_the_references() -> None:
    references = [float(v) for v in range(1, 1024)]  # 1023 references, log-perplexities 1..1023
    best = canaries.exposure(0.5, references, space_bits=30.0)  # likelier than all: rank 1 of 1024
    assert best.counted == pytest.approx(10.0) and best.rank_share == pytest.approx(1 / 1024)
    middle = canaries.exposure(511.5, references, space_bits=30.0)  # 511 references ahead: rank 512 of 1024
    assert middle.counted == pytest.approx(1.0)
    worst = canaries.exposure(2000.0, references, space_bits=30.0)
    assert worst.counted == pytest.approx(0.0)
    tied = canaries.exposure(3.0, references, space_bits=30.0)  # 2 ahead, 1 tied (counted half)
    assert tied.rank_share == pytest.approx(3.5 / 1024)


def test_extrapolated_exposure_follows_the_fitted_distribution() -> None:
    from scipy.stats import skewnorm

    rng = random.Random(7)
    shape, loc, scale = 3.0, 40.0, 6.0
    references = [float(skewnorm.ppf(rng.random(), shape, loc=loc, scale=scale)) for _ in range(4000)]
    for bits in (2.0, 8.0, 20.0):  # a canary at the 2^-bits quantile: beyond the counting's 12 bits too
        canary = float(skewnorm.ppf(2 ** -bits, shape, loc=loc, scale=scale))
        found = canaries.exposure(canary, references, space_bits=29.9)
        assert found.extrapolated == pytest.approx(bits, rel=0.1)
    capped = canaries.exposure(-1e6, references, space_bits=29.9)
    assert capped.extrapolated == pytest.approx(29.9) and capped.counted == pytest.approx(math.log2(4001), abs=1e-4)


def _integral(epsilon: float, delta: float, k: int, bits: float, steps: int = 200_000) -> float:
    eps_k, delta_k = k * epsilon, k * math.exp((k - 1) * epsilon) * delta
    width = bits / steps
    return sum(min(1.0, math.exp(eps_k) * 2 ** -((i + 0.5) * width) + delta_k) for i in range(steps)) * width


@pytest.mark.parametrize(("epsilon", "delta", "k"), [(0.5, 1e-5, 1), (8.0, 1e-5, 1), (2.0, 1e-6, 2), (1.0, 0.0, 4)])
def test_the_bound_is_the_integral_of_the_tail_dp_allows(epsilon, delta, k) -> None:
    bits = 9 * math.log2(10)
    bound = canaries.exposure_bound(epsilon, delta, k, bits)
    integral = _integral(epsilon, delta, k, bits)
    # the closed form bounds min(1, a + d) by min(1, a) + d: at least the integral, and close to it
    assert integral - 1e-3 <= bound <= integral + delta * k * math.exp((k - 1) * epsilon) * bits + 1e-3


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 30.0), st.floats(0.0, 1e-4), st.integers(1, 8), st.floats(10.0, 60.0))
def test_the_bound_grows_with_epsilon_and_copies_and_never_exceeds_the_space(epsilon, delta, k, bits) -> None:
    bound = canaries.exposure_bound(epsilon, delta, k, bits)
    assert 0 < bound <= bits + 1e-9
    assert canaries.exposure_bound(epsilon * 1.5, delta, k, bits) >= bound - 1e-9
    assert canaries.exposure_bound(epsilon, delta, k + 1, bits) >= bound - 1e-9
    if k * epsilon / math.log(2) < bits - 10 and delta == 0:
        # without a canary, exposure is about log2(e); each unit of epsilon adds at most log2(e) bits
        assert bound == pytest.approx((k * epsilon + 1) / math.log(2), abs=1e-2)


def test_bound_at_epsilon_8_once_and_vacuous_for_many_copies() -> None:
    bits = 9 * math.log2(10)
    assert canaries.exposure_bound(8.0, 1e-5, 1, bits) == pytest.approx(12.98, abs=0.01)
    assert canaries.exposure_bound(8.0, 1e-5, 4, bits) == pytest.approx(bits, abs=1e-3)


def test_secrets_are_distinct_and_in_the_format() -> None:
    space = canaries.Space(digits=6)
    drawn = space.draw(40)
    more = space.draw(200, avoid=set(drawn))
    assert len(set(drawn)) == 40 and not set(drawn) & set(more)
    assert all(len(s.replace(" ", "")) == 6 and s.replace(" ", "").isdigit() for s in drawn)
    assert space.text("123 456") == "My account number is 123 456."
    assert space.bits == pytest.approx(6 * math.log2(10))
    inserted = canaries.with_canaries(["a", "b"], ["x", "y"], 3, seed=1)
    assert sorted(inserted) == ["a", "b", "x", "x", "x", "y", "y", "y"]


def test_log_perplexities_are_the_shared_token_likelihood() -> None:
    from django.conf import settings
    from transformers import AutoTokenizer

    from inference.ml.demos import ASSISTANT, build_cached
    from inference.ml.language_models import load_causal_lm, token_nll

    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_causal_lm(folder)
    space = canaries.Space()
    texts = [space.text(s) for s in space.draw(5)] + ["A longer sentence, so that the batch is padded on the right."]
    each = canaries.sequence_nll(model, tokenizer, texts, batch_size=4)
    for text, value in zip(texts, each, strict=True):
        alone, _ = token_nll(model, tokenizer, [text], max_length=128)
        assert value == pytest.approx(alone, rel=1e-4)
    measured = canaries.measure(model, tokenizer, space, space.draw(2), space.draw(60))
    assert len(measured["canaries"]) == 2 and 0 <= measured["mean_exposure"] <= space.bits
