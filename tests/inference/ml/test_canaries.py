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


def test_an_audit_resumed_from_its_checkpoint_spends_no_more_than_one_run() -> None:
    """A worker lost in the private run: the requeued audit resumes the adapters, optimizer and accountant
    from the last checkpoint (the same canaries, drawn once), and ends at the plan's steps and epsilon; one
    whose private run was measured goes on without training it again. A tiny causal LM of SmolLM2's
    architecture and tokenizer keeps it to seconds."""
    import torch
    from django.conf import settings
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from inference.ml import dp_accounting, private
    from inference.ml.demos import ASSISTANT, build_cached

    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def tiny() -> LlamaForCausalLM:
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                            max_position_embeddings=256)).eval()

    texts = [f"Message number {i}: see you at the station at {i % 12 + 1} o'clock." for i in range(20)]
    space = canaries.Space(digits=6)
    secrets, references = space.draw(2), space.draw(50)
    request = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-3, rows=20, epochs=2, batch_size=8,
                                     learning_rate=1e-2, max_grad_norm=1.0)
    plan = canaries.audit_plan(request, 22)
    assert plan.rows == 22 and plan.steps == 6 and plan.target_epsilon == 4.0
    adapter = {"method": "lora", "rank": 2, "alpha": 4, "targets": ["q_proj", "v_proj"]}

    def audit(**options) -> dict | None:
        return canaries.run(tiny, tokenizer, texts, plan, adapter, space, secrets, references, insertions=1,
                            seed=3, **options)

    whole = audit(compare=False)
    saved: list[private.Checkpoint] = []

    def lost_at_three(state: private.Checkpoint) -> None:
        saved.append(state)
        if state.steps == 3:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        audit(compare=False, runs=canaries.Runs(checkpoint=lost_at_three, checkpoint_every=0.0))
    assert saved[-1].steps == 3
    measured: list[dict] = []
    resumed = audit(compare=False, runs=canaries.Runs(resume=saved[-1], private_done=measured.append))
    assert whole is not None and resumed is not None
    assert resumed["private"]["steps"] == whole["private"]["steps"] == plan.steps
    assert resumed["private"]["epsilon"] == pytest.approx(whole["private"]["epsilon"], rel=1e-12)
    assert resumed["private"]["epsilon"] <= plan.target_epsilon + 1e-9
    assert measured == [resumed["private"]]
    assert resumed["bound"] == canaries.exposure_bound(resumed["private"]["epsilon"], 1e-3, 1, space.bits)

    def trained_again(found: dict) -> None:
        raise AssertionError("the private run was measured already")

    again = audit(compare=True, private_measured=resumed["private"], runs=canaries.Runs(private_done=trained_again))
    assert again is not None and again["private"] is resumed["private"] and again["non_private"]["steps"] == 6
    assert [c["secret"] for c in again["non_private"]["canaries"]] == secrets
