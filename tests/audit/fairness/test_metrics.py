"""The report's numbers against fairlearn and scikit-learn computed directly on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_score, roc_auc_score

from audit.fairness.metrics import (
    _cells,
    bootstrap_disparities,
    identity_report,
    tabular_report,
    thresholds_check,
)


def synthetic(n: int = 4000, seed: int = 1):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "sex": rng.choice(["Male", "Female"], n, p=[0.65, 0.35]),
        "race": rng.choice(["White", "Black", "Asian", "Other"], n, p=[0.8, 0.12, 0.06, 0.02]),
    })
    y_true = rng.random(n) < 0.3
    score = np.clip(0.45 * y_true + 0.6 * rng.random(n) - 0.08 * (frame["sex"] == "Female"), 0, 1)
    return frame, y_true, score >= 0.5, score


def ece_by_hand(y, p, bins=10):
    total = 0.0
    for b in range(bins):
        inside = [(yy, pp) for yy, pp in zip(y, p, strict=True) if min(int(pp * bins), bins - 1) == b]
        if inside:
            total += abs(sum(yy for yy, _ in inside) - sum(pp for _, pp in inside))
    return total / len(y)


def test_group_metrics_and_disparities_match_fairlearn_on_raw_rows() -> None:
    # given
    frame, y_true, y_pred, score = synthetic()
    # when
    report = tabular_report(frame, y_true, y_pred, score, sensitive=["sex", "race"], min_group_size=30, resamples=200)
    # then: per group, MetricFrame over the raw rows
    sex = report["axes"][0]
    assert sex["axis"] == "sex"
    direct = MetricFrame(
        metrics={"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
                 "false_positive_rate": false_positive_rate, "accuracy": accuracy_score,
                 "precision": lambda t, p: precision_score(t, p, zero_division=0)},
        y_true=y_true, y_pred=y_pred, sensitive_features=frame["sex"],
    ).by_group
    for group in sex["groups"]:
        for metric in ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy", "precision"):
            assert group[metric] == pytest.approx(direct.loc[group["group"], metric], abs=1e-6), (group, metric)
        mask = (frame["sex"] == group["group"]).to_numpy()
        assert group["count"] == mask.sum()
        assert group["calibration_error"] == pytest.approx(ece_by_hand(y_true[mask], score[mask]), abs=1e-6)
    # and the disparities, as fairlearn's own functions give them
    d = sex["disparities"]
    assert d["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=frame["sex"]), abs=1e-6)
    assert d["demographic_parity_ratio"]["value"] == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=frame["sex"]), abs=1e-6)
    assert d["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=frame["sex"]), abs=1e-6)
    for name, value in d.items():
        low, high = value["ci95"]
        assert low <= value["value"] <= high, name


def test_intersection_and_small_groups() -> None:
    frame, y_true, y_pred, score = synthetic()
    report = tabular_report(frame, y_true, y_pred, score, sensitive=["sex", "race"], min_group_size=60, resamples=100)
    names = [a["axis"] for a in report["axes"]]
    assert names == ["sex", "race", "sex x race"]
    both = report["axes"][2]
    small = [g for g in both["groups"] if g["too_small"]]
    scored = [g for g in both["groups"] if not g["too_small"]]
    assert small and all(g["count"] < 60 and g["selection_rate"] is None for g in small)
    assert all(g["count"] >= 60 for g in scored)
    # the disparities are over the scored groups only
    keep = (frame["sex"] + " x " + frame["race"]).isin([g["group"] for g in scored]).to_numpy()
    groups = (frame["sex"] + " x " + frame["race"])[keep]
    expected = demographic_parity_difference(y_true[keep], y_pred[keep], sensitive_features=groups)
    assert both["disparities"]["demographic_parity_difference"]["value"] == pytest.approx(expected, abs=1e-6)


def test_one_scorable_group_is_a_warning_not_a_number() -> None:
    frame = pd.DataFrame({"sex": ["A"] * 50 + ["B"] * 5})
    y = np.array([True, False] * 27 + [True])
    report = tabular_report(frame, y, y, y.astype(float), sensitive=["sex"], min_group_size=30, resamples=100)
    assert report["axes"][0]["verdict"] == "warn" and "Fewer than two groups" in report["axes"][0]["note"]


def test_multinomial_bootstrap_matches_row_resampling() -> None:
    """The cell-count bootstrap has the distribution of resampling rows within groups."""
    frame, y_true, y_pred, _ = synthetic(n=3000, seed=4)
    codes = pd.Categorical(frame["sex"]).codes.astype(np.int64)
    cells = _cells(y_true, y_pred, codes, 2)
    fast, _ = bootstrap_disparities(cells, resamples=4000, seed=0)
    rng = np.random.default_rng(1)
    slow = []
    groups = [np.flatnonzero(codes == g) for g in range(2)]

    def parity_difference(picked: np.ndarray) -> float:
        # fairlearn's demographic parity difference: the largest minus the smallest group selection rate
        rates = [y_pred[picked][codes[picked] == g].mean() for g in range(2)]
        return float(max(rates) - min(rates))

    everyone = np.arange(len(codes))
    assert parity_difference(everyone) == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=codes), abs=1e-12)
    for _ in range(1000):  # resampling rows within each group, as the cell-count bootstrap claims to
        picked = np.concatenate([rng.choice(idx, size=len(idx), replace=True) for idx in groups])
        slow.append(parity_difference(picked))
    low, high = np.percentile(slow, [2.5, 97.5])
    assert fast["demographic_parity_difference"][0] == pytest.approx(low, abs=0.006)
    assert fast["demographic_parity_difference"][1] == pytest.approx(high, abs=0.006)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=40, max_value=400), st.integers(min_value=0, max_value=10_000))
def test_compressed_metric_frame_equals_raw(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"g": rng.choice(["a", "b", "c"], n)})
    y_true, score = rng.random(n) < 0.4, rng.random(n)
    y_pred = score > 0.5
    report = tabular_report(frame, y_true, y_pred, score, sensitive=["g"], min_group_size=1, resamples=100)
    raw = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "sel": selection_rate},
                      y_true=y_true, y_pred=y_pred, sensitive_features=frame["g"]).by_group
    for group in report["axes"][0]["groups"]:
        g = group["group"]
        assert group["selection_rate"] == pytest.approx(raw.loc[g, "sel"], abs=1e-6)
        assert group["true_positive_rate"] == pytest.approx(raw.loc[g, "tpr"], abs=1e-6, nan_ok=True)
        assert group["false_positive_rate"] == pytest.approx(raw.loc[g, "fpr"], abs=1e-6, nan_ok=True)


def test_verdicts_follow_the_thresholds() -> None:
    frame, y_true, y_pred, score = synthetic()
    strict = thresholds_check({"demographic_parity_difference": {"warn": 0.0, "fail": 0.01}})
    lenient = thresholds_check({name: {"warn": 1.0, "fail": 1.0} for name in
                                ("demographic_parity_difference", "equalized_odds_difference")}
                               | {"demographic_parity_ratio": {"warn": 0.0, "fail": 0.0}})
    failing = tabular_report(frame, y_true, y_pred, score, sensitive=["sex"], resamples=100, thresholds=strict)
    passing = tabular_report(frame, y_true, y_pred, score, sensitive=["sex"], resamples=100, thresholds=lenient)
    assert failing["axes"][0]["disparities"]["demographic_parity_difference"]["verdict"] == "fail"
    assert failing["verdict"] == "fail"
    assert passing["verdict"] == "pass"


@pytest.mark.parametrize("bad", [
    {"nonsense_metric": {"warn": 0.1}},
    {"demographic_parity_difference": {"warn": 0.3, "fail": 0.2}},
    {"demographic_parity_ratio": {"warn": 0.7, "fail": 0.8}},
    {"equalized_odds_difference": {"fail": 2}},
    {"equalized_odds_difference": {"fail": "high"}},
    {"equalized_odds_difference": 0.1},
])
def test_nonsense_thresholds_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        thresholds_check(bad)


def test_identity_metrics_match_sklearn() -> None:
    # given: 30 templates x 4 terms; term "b" scores higher, and the labels separate the scores
    rng = np.random.default_rng(3)
    labels = rng.random(30) < 0.5
    scores = np.clip(0.2 + 0.5 * labels[:, None] + 0.2 * rng.random((30, 4)), 0, 1)
    scores[:, 1] += 0.15
    terms = ["a", "b", "c", "d"]
    # when
    report = identity_report(scores, terms, labels=labels, resamples=500)
    # then
    by_term = {r["term"]: r for r in report["per_term"]}
    assert report["per_term"][0]["term"] == "b"  # sorted by |shift|
    assert by_term["b"]["score_shift"] == pytest.approx((scores[:, 1] - scores.mean(axis=1)).mean(), abs=1e-6)
    predicted = scores >= 0.5
    reference = predicted.mean(axis=1) >= 0.5
    assert by_term["c"]["flip_rate"] == pytest.approx((predicted[:, 2] != reference).mean(), abs=1e-6)
    j = 1
    sub = scores[:, j]
    others = np.delete(scores, j, axis=1)
    assert by_term["b"]["subgroup_auc"] == pytest.approx(roc_auc_score(labels, sub), abs=1e-6)
    bpsn_scores = np.r_[others[labels].ravel(), sub[~labels]]
    bpsn_y = np.r_[np.ones(others[labels].size), np.zeros((~labels).sum())]
    assert by_term["b"]["bpsn_auc"] == pytest.approx(roc_auc_score(bpsn_y, bpsn_scores), abs=1e-6)
    bnsp_scores = np.r_[sub[labels], others[~labels].ravel()]
    bnsp_y = np.r_[np.ones(labels.sum()), np.zeros(others[~labels].size)]
    assert by_term["b"]["bnsp_auc"] == pytest.approx(roc_auc_score(bnsp_y, bnsp_scores), abs=1e-6)
    low, high = by_term["b"]["score_shift_ci95"]
    assert low <= by_term["b"]["score_shift"] <= high
    assert report["checks"]["identity_score_shift"]["value"] == pytest.approx(abs(by_term["b"]["score_shift"]), abs=1e-6)


def test_identity_report_without_labels_has_no_aucs() -> None:
    report = identity_report(np.full((5, 3), 0.7), ["x", "y", "z"], resamples=100)
    assert "subgroup_auc" not in report["per_term"][0] and report["overall_auc"] is None
    assert report["checks"]["identity_flip_rate"]["value"] == 0 and report["verdict"] == "pass"


def test_a_reversed_score_label_is_said_and_not_judged_as_bias() -> None:
    # given: the score runs opposite to the labels (the other class's probability was chosen)
    labels = np.array([True, False] * 10)
    scores = np.where(labels[:, None], 0.1, 0.9) + np.zeros((20, 3))
    scores[0, 2] = 0.95  # "z" flips the first template's label
    templates = [f"sentence {i} about {{identity}}" for i in range(20)]
    # when
    report = identity_report(scores, ["x", "y", "z"], labels=labels, resamples=100, templates=templates)
    # then
    assert report["overall_auc"] < 0.5 and report["direction"]["reversed"]
    assert "opposite" in report["direction"]["message"]
    assert {c["verdict"] for name, c in report["checks"].items() if name.endswith("_auc")} <= {"pass", "warn"}
    by_term = {r["term"]: r for r in report["per_term"]}
    assert by_term["z"]["flipped"] == ["sentence 0 about z"] and by_term["x"]["flipped"] == []
    # the right label: no warning
    assert identity_report(1 - scores, ["x", "y", "z"], labels=labels, resamples=100)["direction"] is None
