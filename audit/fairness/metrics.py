"""Group fairness metrics, bootstrap intervals and identity-term tests: numpy, pandas, fairlearn; no Django.

Point estimates come from fairlearn's MetricFrame. The 95% intervals come from a bootstrap that
resamples rows within each group (stratified, so every group keeps its size). Every disparity we
report is a function of each group's confusion cells (TP, FP, FN, TN) alone, and resampling n_g rows
with replacement from a group gives cell counts distributed exactly Multinomial(n_g, the group's
cell frequencies); so each resample draws four counts per group instead of n_g row indices. It is
the same bootstrap distribution, at a cost that does not grow with the number of rows
(tests/audit/fairness/test_metrics.py compares it with the row-index bootstrap).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from django.utils.translation import gettext_lazy

Progress = Callable[[int, int], None]

DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
GROUP_METRICS = ("selection_rate", "true_positive_rate", "false_positive_rate", "precision", "accuracy",
                 "calibration_error")
IDENTITY_METRICS = ("identity_score_shift", "identity_flip_rate", "identity_subgroup_auc",
                    "identity_bpsn_auc", "identity_bnsp_auc")

# "max": larger is worse (warn/fail when above); "min": smaller is worse (warn/fail when below).
DEFAULT_THRESHOLDS: dict[str, dict[str, Any]] = {
    "demographic_parity_difference": {"warn": 0.1, "fail": 0.2, "direction": "max"},
    "demographic_parity_ratio": {"warn": 0.9, "fail": 0.8, "direction": "min"},  # fail = the four-fifths rule
    "equalized_odds_difference": {"warn": 0.1, "fail": 0.2, "direction": "max"},
    "identity_score_shift": {"warn": 0.05, "fail": 0.1, "direction": "max"},  # |shift| of the worst term
    "identity_flip_rate": {"warn": 0.05, "fail": 0.1, "direction": "max"},
    "identity_subgroup_auc": {"warn": 0.9, "fail": 0.8, "direction": "min"},
    "identity_bpsn_auc": {"warn": 0.9, "fail": 0.8, "direction": "min"},
    "identity_bnsp_auc": {"warn": 0.9, "fail": 0.8, "direction": "min"},
    # generative models (audit/fairness/generative.py): gaps between the highest and the lowest group
    "probe_sentiment_gap": {"warn": 0.1, "fail": 0.2, "direction": "max"},  # of mean P(pos) - P(neg)
    "probe_negative_rate_gap": {"warn": 0.1, "fail": 0.2, "direction": "max"},
    "probe_toxicity_rate_gap": {"warn": 0.05, "fail": 0.1, "direction": "max"},
    "pairs_preference_gap": {"warn": 0.1, "fail": 0.2, "direction": "max"},  # |preference rate - 50%|
}
FOUR_FIFTHS = 0.8
VERDICT_ORDER = {"pass": 0, "warn": 1, "fail": 2}
# each verdict as a reader reads it (pages, evidence, the PDF)
VERDICT_WORDS = {"pass": gettext_lazy("pass"), "warn": gettext_lazy("warn"), "fail": gettext_lazy("fail")}

# How a reader names each metric; its identifier (the key of the JSON, the CSV and the policy) is shown
# beside it, so that a reader can find the number in the downloads.
METRIC_WORDS = {
    "demographic_parity_difference": gettext_lazy("Demographic parity difference"),
    "demographic_parity_ratio": gettext_lazy("Demographic parity ratio"),
    "equalized_odds_difference": gettext_lazy("Equalized odds difference"),
    "identity_score_shift": gettext_lazy("Identity term score shift"),
    "identity_flip_rate": gettext_lazy("Identity term flip rate"),
    "identity_subgroup_auc": gettext_lazy("Subgroup AUC"),
    "identity_bpsn_auc": gettext_lazy("BPSN AUC (background positive, subgroup negative)"),
    "identity_bnsp_auc": gettext_lazy("BNSP AUC (background negative, subgroup positive)"),
    "probe_sentiment_gap": gettext_lazy("Sentiment gap"),
    "probe_negative_rate_gap": gettext_lazy("Negative rate gap"),
    "probe_toxicity_rate_gap": gettext_lazy("Toxicity rate gap"),
    "pairs_preference_gap": gettext_lazy("Stereotype preference gap"),
}


def metric_said(name: str) -> str:
    """A metric's name for a reader; one this table does not know, as its identifier reads."""
    return str(METRIC_WORDS.get(name, name.replace("_", " ")))


def thresholds_check(thresholds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The defaults overlaid with an organisation's settings; raises ValueError for nonsense."""
    merged = {name: dict(rule) for name, rule in DEFAULT_THRESHOLDS.items()}
    for name, rule in thresholds.items():
        if name not in merged:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(merged))}")
        if not isinstance(rule, dict) or set(rule) - {"warn", "fail"}:
            raise ValueError(f"{name}: give an object with 'warn' and/or 'fail'")
        for level, value in rule.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"{name}.{level} must be a number between 0 and 1")
            merged[name][level] = float(value)
        warn, fail = merged[name]["warn"], merged[name]["fail"]
        if (merged[name]["direction"] == "max" and warn > fail) or (merged[name]["direction"] == "min" and warn < fail):
            raise ValueError(f"{name}: the warn level must come before the fail level")
    return merged


def judge(name: str, value: float | None, interval: Sequence[float | None] | None,
          thresholds: dict[str, dict[str, Any]]) -> str:
    """pass / warn / fail for one disparity; an interval reaching past the fail level warns."""
    if value is None or not np.isfinite(value):
        return "warn"  # not measurable (e.g. no positives in a group): a person must look
    rule = thresholds[name]
    worse: Callable[[float, float], bool] = (lambda a, b: a > b) if rule["direction"] == "max" else (lambda a, b: a < b)
    if worse(value, rule["fail"]):
        return "fail"
    if worse(value, rule["warn"]):
        return "warn"
    if interval is not None:
        bound = interval[1] if rule["direction"] == "max" else interval[0]
        if bound is not None and worse(bound, rule["fail"]):
            return "warn"
    return "pass"


def worst(verdicts: Sequence[str]) -> str:
    return max(verdicts, key=VERDICT_ORDER.__getitem__, default="pass")


def _finite(value: Any) -> float | None:
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


# ---------------------------------------------------------------- tabular: groups and disparities

def expected_calibration_error(y_true: Any, y_prob: Any, sample_weight: Any = None, bins: int = 10) -> float:
    """ECE: the mean |observed rate - mean score| over equal-width score bins, weighted by bin size."""
    y_true = np.asarray(y_true, dtype=float)
    y_prob = np.asarray(y_prob, dtype=float)
    weight = np.ones_like(y_true) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if weight.sum() == 0:
        return float("nan")
    which = np.minimum((y_prob * bins).astype(int), bins - 1)
    observed = np.bincount(which, weights=y_true * weight, minlength=bins)
    predicted = np.bincount(which, weights=y_prob * weight, minlength=bins)
    return float(np.abs(observed - predicted).sum() / weight.sum())


def _weighted_count(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
    return float(np.sum(sample_weight))


def _metric_frame(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, groups: pd.Series) -> pd.DataFrame:
    """fairlearn's MetricFrame per group, over the rows compressed to their distinct cells.

    Every metric here depends on a row only through (group, label, prediction, score bin) and, for
    calibration, the sum of scores in a bin; so rows sharing those are merged into one with a
    sample weight (their count) and their mean score. The numbers are fairlearn's own, exactly
    (a test compares with MetricFrame over the raw rows); the cost no longer grows with the rows.
    """
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, precision_score

    score_bin = np.minimum((y_score * 10).astype(int), 9)
    merged = (
        pd.DataFrame({"group": groups.to_numpy(), "y_true": y_true, "y_pred": y_pred, "bin": score_bin,
                      "score": y_score})
        .groupby(["group", "y_true", "y_pred", "bin"], observed=True, sort=False)["score"]
        .agg(["size", "mean"])
        .reset_index()
    )
    weight = merged["size"].to_numpy(dtype=float)
    metrics: dict[str, Callable[..., Any]] = {
        "count": _weighted_count,
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "precision": partial(precision_score, zero_division=0),
        "accuracy": accuracy_score,
    }
    frame = MetricFrame(
        metrics=metrics, y_true=merged["y_true"].to_numpy(), y_pred=merged["y_pred"].to_numpy(),
        sensitive_features=merged["group"], sample_params={name: {"sample_weight": weight} for name in metrics},
    )
    calibration = MetricFrame(
        metrics=expected_calibration_error, y_true=merged["y_true"].to_numpy(dtype=float),
        y_pred=merged["mean"].to_numpy(), sensitive_features=merged["group"],
        sample_params={"sample_weight": weight},
    )
    table = frame.by_group.copy()
    table["calibration_error"] = calibration.by_group
    return table


def _cells(y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the counts of TP, FP, FN, TN (n_groups x 4)."""
    cell = np.where(y_pred, np.where(y_true, 0, 1), np.where(y_true, 2, 3))
    return np.bincount(codes * 4 + cell, minlength=n_groups * 4).reshape(n_groups, 4).astype(float)


def _disparities_from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Disparities over groups from cell counts (... x groups x 4); NaN-aware, as fairlearn's between_groups."""
    tp, fp, fn, tn = (cells[..., i] for i in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        selection = (tp + fp) / (tp + fp + fn + tn)
        tpr = tp / (tp + fn)
        fpr = fp / (fp + tn)
        sel_max, sel_min = np.nanmax(selection, axis=-1), np.nanmin(selection, axis=-1)
        ratio = np.where(sel_max > 0, sel_min / sel_max, np.nan)
        eo = np.maximum(np.nanmax(tpr, axis=-1) - np.nanmin(tpr, axis=-1), np.nanmax(fpr, axis=-1) - np.nanmin(fpr, axis=-1))
    return {
        "demographic_parity_difference": sel_max - sel_min,
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": eo,
    }


def bootstrap_disparities(
    cells: np.ndarray, *, resamples: int, seed: int
) -> tuple[dict[str, list[float | None]], list[list[float | None]]]:
    """95% percentile intervals of each disparity and of each group's selection rate.

    Resamples rows within groups (see the module doc).
    """
    rng = np.random.default_rng(seed)
    sizes = cells.sum(axis=1).astype(np.int64)
    freqs = cells / sizes[:, None]
    draws = np.stack([rng.multinomial(n, p, size=resamples) for n, p in zip(sizes, freqs, strict=True)], axis=1)
    intervals: dict[str, list[float | None]] = {}
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: a rate undefined in every group
            for name, values in _disparities_from_cells(draws.astype(float)).items():
                finite = values[np.isfinite(values)]
                if len(finite) < resamples * 0.5:
                    intervals[name] = [None, None]
                else:
                    low, high = np.percentile(finite, [2.5, 97.5])
                    intervals[name] = [_finite(low), _finite(high)]
    selection = (draws[..., 0] + draws[..., 1]) / sizes[None, :]
    low, high = np.percentile(selection, [2.5, 97.5], axis=0)
    return intervals, [[_finite(a), _finite(b)] for a, b in zip(low, high, strict=True)]


@dataclass(frozen=True)
class Axis:
    """A sensitive column, or an intersection of several (the group name joins their values by ' x ')."""

    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return " x ".join(self.columns)

    def groups(self, frame: pd.DataFrame) -> pd.Series:
        if len(self.columns) == 1:
            return frame[self.columns[0]].astype(str)
        joined = frame[self.columns[0]].astype(str)
        for column in self.columns[1:]:
            joined = joined + " x " + frame[column].astype(str)
        return joined


def axes_for(columns: Sequence[str]) -> list[Axis]:
    """Each sensitive column alone, then every intersection of two or more."""
    axes = [Axis((c,)) for c in columns]
    for size in range(2, len(columns) + 1):
        axes += [Axis(combo) for combo in itertools.combinations(columns, size)]
    return axes


def axis_report(
    axis: Axis, frame: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, *,
    min_group_size: int, resamples: int, seed: int, thresholds: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    groups = axis.groups(frame)
    sizes = groups.value_counts()
    scored = sorted(sizes[sizes >= min_group_size].index)
    too_small = sorted(sizes[sizes < min_group_size].index)
    rows: list[dict[str, Any]] = [
        {"group": g, "count": int(sizes[g]), "too_small": True, **dict.fromkeys(GROUP_METRICS)} for g in too_small
    ]
    result: dict[str, Any] = {"axis": axis.name, "columns": list(axis.columns), "groups": rows, "disparities": {}}
    if len(scored) < 2:
        result["note"] = (f"Fewer than two groups have at least {min_group_size} rows; "
                          "no disparity can be measured on this axis.")
        result["verdict"] = "warn"
        return result
    keep = groups.isin(scored).to_numpy()
    kept = groups[keep].reset_index(drop=True)
    table = _metric_frame(y_true[keep], y_pred[keep], y_score[keep], kept)
    codes = pd.Categorical(kept, categories=scored).codes.astype(np.int64)
    cells = _cells(y_true[keep], y_pred[keep], codes, len(scored))
    intervals, selection_ci = bootstrap_disparities(cells, resamples=resamples, seed=seed)
    for group, ci in zip(scored, selection_ci, strict=True):
        line = table.loc[group]
        rows.append({"group": group, "count": int(line["count"]), "too_small": False,
                     **{m: _finite(line[m]) for m in GROUP_METRICS}, "selection_rate_ci95": ci})
    rows.sort(key=lambda r: (r["too_small"], -r["count"]))
    points = {name: float(values) for name, values in _disparities_from_cells(cells).items()}
    verdicts = []
    for name in DISPARITIES:
        value = _finite(points[name])
        verdict = judge(name, value, intervals[name], thresholds)
        verdicts.append(verdict)
        result["disparities"][name] = {"value": value, "ci95": intervals[name], "verdict": verdict,
                                       "warn": thresholds[name]["warn"], "fail": thresholds[name]["fail"]}
    ratio = points["demographic_parity_ratio"]
    result["four_fifths_rule"] = {
        "ratio": _finite(ratio), "passes": bool(np.isfinite(ratio) and ratio >= FOUR_FIFTHS),
        "lowest_group": min(scored, key=lambda g: table.loc[g, "selection_rate"]),
        "highest_group": max(scored, key=lambda g: table.loc[g, "selection_rate"]),
    }
    result["verdict"] = worst(verdicts)
    return result


def tabular_report(
    frame: pd.DataFrame, y_true: Any, y_pred: Any, y_score: Any, *, sensitive: Sequence[str],
    min_group_size: int = 30, resamples: int = 1000, seed: int = 0,
    thresholds: dict[str, dict[str, Any]] | None = None, progress: Progress | None = None,
) -> dict[str, Any]:
    """Per group metrics and disparities, with intervals and verdicts, for each axis of `sensitive`.

    `y_true`/`y_pred` are booleans (the favourable outcome), `y_score` the model's probability of it.
    """
    rules = thresholds or thresholds_check({})
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    y_score = np.asarray(y_score, dtype=float)
    axes = axes_for(sensitive)
    results = []
    for number, axis in enumerate(axes, start=1):
        results.append(axis_report(axis, frame, y_true, y_pred, y_score, min_group_size=min_group_size,
                                   resamples=resamples, seed=seed + number, thresholds=rules))
        if progress:
            progress(number, len(axes))
    return {
        "kind": "tabular",
        "rows": len(y_true),
        "overall": {"selection_rate": _finite(y_pred.mean()), "accuracy": _finite((y_pred == y_true).mean()),
                    "base_rate": _finite(y_true.mean())},
        "axes": results,
        "verdict": worst([a["verdict"] for a in results]),
        "settings": {"min_group_size": min_group_size, "bootstrap_resamples": resamples, "seed": seed,
                     "confidence": 0.95, "thresholds": rules},
    }


# ---------------------------------------------------------------- text: counterfactual identity terms

def _auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float | None:
    if len(positive_scores) == 0 or len(negative_scores) == 0:
        return None
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(positive_scores)), np.zeros(len(negative_scores))]
    return _finite(roc_auc_score(y, np.r_[positive_scores, negative_scores]))


FLIPPED_SHOWN = 5  # sentences shown per term whose label differs from the template's


def identity_report(
    scores: Any, terms: Sequence[str], *, labels: Any | None = None, threshold: float = 0.5,
    resamples: int = 1000, seed: int = 0, thresholds: dict[str, dict[str, Any]] | None = None,
    templates: Sequence[str] | None = None, slot: str = "{identity}",
) -> dict[str, Any]:
    """Counterfactual identity tests over `scores` (templates x terms): each template filled with each term.

    Per term: the mean score shift against the template's average over all terms; the flip rate
    (how often the term's predicted label differs from the label most terms get in that template);
    and, where templates carry labels (True = the class the score measures), the subgroup, BPSN and
    BNSP AUCs of Borkan et al. 2019, the background being the other terms' sentences. With
    `templates`, each term lists the sentences whose label flipped (FLIPPED_SHOWN at most).

    The labels' direction is checked: an overall AUC below 0.5 means the sentences labelled 1 score
    lower than those labelled 0, so the score measures the opposite class (the wrong score label was
    chosen). The AUC checks are then not judged as bias: their verdict is at most "warn", and
    `direction` says what to change.
    """
    rules = thresholds or thresholds_check({})
    scores = np.asarray(scores, dtype=float)
    n_templates, n_terms = scores.shape
    predicted = scores >= threshold
    reference = predicted.mean(axis=1) >= 0.5
    shifts = scores - scores.mean(axis=1, keepdims=True)
    flips = predicted != reference[:, None]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n_templates, size=(resamples, n_templates))
    shift_boot = shifts[pick].mean(axis=1)  # resamples x terms
    flip_boot = flips[pick].mean(axis=1)
    shift_ci = np.percentile(shift_boot, [2.5, 97.5], axis=0)
    flip_ci = np.percentile(flip_boot, [2.5, 97.5], axis=0)
    y = None if labels is None else np.asarray(labels, dtype=bool)
    rows = []
    for j, term in enumerate(terms):
        row: dict[str, Any] = {
            "term": term,
            "mean_score": _finite(scores[:, j].mean()),
            "score_shift": _finite(shifts[:, j].mean()),
            "score_shift_ci95": [_finite(shift_ci[0, j]), _finite(shift_ci[1, j])],
            "flip_rate": _finite(flips[:, j].mean()),
            "flip_rate_ci95": [_finite(flip_ci[0, j]), _finite(flip_ci[1, j])],
        }
        if y is not None:
            others = np.delete(scores, j, axis=1)
            sub, background = scores[:, j], others.ravel()
            background_y = np.repeat(y, n_terms - 1)
            row["subgroup_auc"] = _auc(sub[y], sub[~y])
            row["bpsn_auc"] = _auc(background[background_y], sub[~y])
            row["bnsp_auc"] = _auc(sub[y], background[~background_y])
        if templates is not None:
            row["flipped"] = [templates[i].replace(slot, term) for i in np.flatnonzero(flips[:, j])[:FLIPPED_SHOWN]]
        rows.append(row)
    rows.sort(key=lambda r: -abs(r["score_shift"] or 0))
    summary: dict[str, Any] = {
        "identity_score_shift": max(abs(r["score_shift"] or 0) for r in rows),
        "identity_flip_rate": max(r["flip_rate"] or 0 for r in rows),
    }
    if y is not None:
        for metric in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
            values = [r[metric] for r in rows if r[metric] is not None]
            summary[f"identity_{metric}"] = min(values) if values else None
    overall = _auc(scores[y].ravel(), scores[~y].ravel()) if y is not None else None
    reversed_labels = overall is not None and overall < 0.5
    checks = {}
    for name, value in summary.items():
        verdict = judge(name, value, None, rules)
        if reversed_labels and name.endswith("_auc") and verdict == "fail":
            verdict = "warn"  # measured against labels the score runs opposite to: not evidence of bias
        checks[name] = {"value": _finite(value) if value is not None else None, "verdict": verdict,
                        "warn": rules[name]["warn"], "fail": rules[name]["fail"]}
    direction = None
    if reversed_labels:
        direction = {"reversed": True, "overall_auc": _finite(overall),
                     "message": (f"The sentences labelled 1 score lower than those labelled 0 (overall AUC "
                                 f"{overall:.4f}): the score measures the opposite of what label 1 means, so the "
                                 "AUC checks say nothing about bias. Choose the other score label and run the "
                                 "report again.")}
    return {
        "kind": "text",
        "templates": n_templates,
        "terms": list(terms),
        "rows": int(scores.size),
        "overall_auc": overall,
        "direction": direction,
        "per_term": rows,
        "checks": checks,
        "verdict": worst([c["verdict"] for c in checks.values()]),
        "settings": {"score_threshold": threshold, "bootstrap_resamples": resamples, "seed": seed,
                     "confidence": 0.95, "thresholds": rules},
    }
