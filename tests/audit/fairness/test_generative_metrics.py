"""The numbers of generative bias reports (audit/fairness/generative.py), against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.fairness.generative import pairs_report, probe_report, wilson
from audit.fairness.metrics import thresholds_check

RULES = thresholds_check({})


def _probe(seed: int = 0, *, prompts=(8, 8, 3), per_prompt: int = 3, shift: float = 0.0, resamples: int = 400):
    rng = np.random.default_rng(seed)
    prompt_group = [g for g, n in enumerate(prompts) for _ in range(n)]
    completion_prompt = [p for p in range(len(prompt_group)) for _ in range(per_prompt)]
    group_of = np.asarray(prompt_group)[completion_prompt]
    sentiment = np.clip(rng.normal(0.2 - shift * (group_of == 1), 0.3), -1, 1)
    negative = sentiment < 0
    toxic = rng.random(len(sentiment)) < 0.05 + 0.3 * shift * (group_of == 1)
    return dict(groups=["a", "b", "c"], prompt_group=prompt_group, completion_prompt=completion_prompt,
                sentiment=sentiment, negative=negative, toxic=toxic, min_group_size=10, resamples=resamples,
                seed=seed, thresholds=RULES)


def test_group_means_rates_and_gaps_are_the_direct_ones() -> None:
    args = _probe(shift=0.5)
    report = probe_report(**args)
    group_of = np.asarray(args["prompt_group"])[args["completion_prompt"]]
    rows = {r["group"]: r for r in report["groups"]}
    for index, name in enumerate(args["groups"]):
        mine = group_of == index
        assert rows[name]["completions"] == mine.sum()
        assert rows[name]["mean_sentiment"] == pytest.approx(args["sentiment"][mine].mean(), abs=1e-6)
        assert rows[name]["negative_rate"] == pytest.approx(args["negative"][mine].mean(), abs=1e-6)
        assert rows[name]["toxic_rate"] == pytest.approx(args["toxic"][mine].mean(), abs=1e-6)
    # group c has 9 completions, under the minimum of 10: reported, not compared
    assert rows["c"]["too_small"] and rows["c"]["mean_sentiment_ci95"] == [None, None]
    assert report["scored_groups"] == ["a", "b"]
    gap = report["disparities"]["probe_sentiment_gap"]
    assert gap["value"] == pytest.approx(abs(rows["a"]["mean_sentiment"] - rows["b"]["mean_sentiment"]), abs=1e-6)
    assert (gap["highest"], gap["lowest"]) == ("a", "b")
    assert gap["verdict"] == "fail" and report["verdict"] == "fail"  # a gap of about 0.5 against fail at 0.2


def test_the_bootstrap_resamples_prompts_with_their_completions() -> None:
    """The interval is the percentile interval of a cluster bootstrap: reproduced here by drawing prompt
    indices with the same generator, in the same order."""
    args = _probe(seed=3)
    report = probe_report(**args)
    rng = np.random.default_rng(3)
    prompt_group = np.asarray(args["prompt_group"])
    completion_prompt = np.asarray(args["completion_prompt"])
    for index, row in enumerate(report["groups"]):
        prompts = np.flatnonzero(prompt_group == index)
        pick = prompts[rng.integers(0, prompts.size, size=(args["resamples"], prompts.size))]
        if row["too_small"]:
            continue
        means = [np.concatenate([args["sentiment"][completion_prompt == p] for p in draw]).mean() for draw in pick]
        low, high = np.percentile(means, [2.5, 97.5])
        assert row["mean_sentiment_ci95"] == pytest.approx([low, high], abs=1e-6)


def test_alike_groups_pass_and_one_group_alone_cannot_be_compared() -> None:
    args = _probe(seed=1, prompts=(200, 200, 200), per_prompt=2, resamples=300)
    args["toxic"] = np.zeros_like(args["toxic"])
    report = probe_report(**args)
    assert report["disparities"]["probe_toxicity_rate_gap"]["value"] == 0
    assert report["disparities"]["probe_sentiment_gap"]["verdict"] == "pass"
    lonely = probe_report(**{**_probe(prompts=(8, 2, 2)), "min_group_size": 10})
    assert all(d["value"] is None and d["verdict"] == "warn" for d in lonely["disparities"].values())


def test_pairs_preference_rate_ties_and_the_worst_type() -> None:
    report = pairs_report(bias_types=["g", "g", "g", "g", "r", "r"], ll_more=[-1, -2, -3, -4, -5, -6],
                          ll_less=[-2, -1, -3, -5, -7, -8], thresholds=RULES)
    rows = {r["bias_type"]: r for r in report["per_type"]}
    assert rows["g"]["preference_rate"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)  # the tie counts half
    assert rows["r"]["preference_rate"] == 1.0
    assert rows["g"]["mean_loglik_difference"] == pytest.approx(np.mean([1, -1, 0, 1]))
    assert rows["g"]["verdict"] == "warn"  # 0.125 from 50%: past warn (0.1), not fail (0.2)
    assert report["overall"]["pairs"] == 6
    check = report["checks"]["pairs_preference_gap"]
    assert check["bias_type"] == "r" and check["value"] == pytest.approx(0.5)
    assert check["verdict"] == "fail" and report["verdict"] == "fail"
    # with many pairs that split evenly, the interval is narrow: pass
    even = pairs_report(bias_types=["x"] * 2000, ll_more=[0, 1] * 1000, ll_less=[1, 0] * 1000, thresholds=RULES)
    assert even["verdict"] == "pass" and even["overall"]["preference_rate"] == 0.5


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), share=st.floats(0, 1))
def test_wilson_interval_holds_the_rate_and_stays_in_the_unit_range(n: int, share: float) -> None:
    successes = round(share * n)
    low, high = wilson(successes, n)
    assert 0 <= low <= successes / n + 1e-9 and successes / n - 1e-9 <= high <= 1


def test_wilson_matches_statsmodels_reference_values() -> None:
    # statsmodels.stats.proportion.proportion_confint(8, 20, method="wilson") = (0.2188, 0.6134)
    assert wilson(8, 20) == pytest.approx([0.21879, 0.61340], abs=1e-4)
    assert wilson(0, 10)[0] == 0
