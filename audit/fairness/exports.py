"""A finished bias report as a JSON document and as one CSV table (for people's spreadsheets)."""

from __future__ import annotations

import io
from typing import Any

from audit.fairness.metrics import GROUP_METRICS
from audit.fairness.models import BiasReport
from portal.platform import csvsafe


def report_document(report: BiasReport) -> dict[str, Any]:
    return {
        "report": {"id": report.pk, "number": report.number, "kind": report.kind, "verdict": report.verdict,
                   "created_by": report.created_by.username, "created_at": report.created_at.isoformat(),
                   "finished_at": report.finished_at.isoformat() if report.finished_at else None,
                   "params": report.params},
        **(report.result or {}),
    }


PROBE_QUANTITIES = ("mean_sentiment", "negative_rate", "toxic_rate")


def _probes_table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A row per group, per disparity, then per completion (what the model wrote and its scores)."""
    quantities = [c for q in PROBE_QUANTITIES for c in (q, f"{q}_ci95_low", f"{q}_ci95_high")]
    header = ["section", "group", "prompts", "completions", "too_small", *quantities, "metric", "value",
              "ci95_low", "ci95_high", "verdict", "prompt", "text", "sentiment", "negative", "toxic_probability"]
    blank_group, blank_metric = [""] * (4 + len(quantities)), [""] * 5
    rows: list[list[Any]] = []
    for g in result.get("groups", []):
        rows.append(["group", g["group"], g["prompts"], g["completions"], g["too_small"],
                     *[v for q in PROBE_QUANTITIES for v in (g[q], *g[f"{q}_ci95"])], *blank_metric, "", "", "", "", ""])
    for name, d in result.get("disparities", {}).items():
        rows.append(["disparity", *blank_group, name, d["value"], *d["ci95"], d["verdict"], "", "", "", "", ""])
    for c in result.get("completions", []):
        rows.append(["completion", c["group"], *blank_group[1:], *blank_metric, c["prompt"], c["text"], c["sentiment"],
                     c["negative"], c["toxic_probability"]])
    return header, rows


def _pairs_table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A row per bias type and overall, then per pair (both sentences and their log-likelihoods)."""
    header = ["section", "bias_type", "pairs", "preference_rate", "ci95_low", "ci95_high", "mean_loglik_difference",
              "verdict", "sent_more", "sent_less", "loglik_more", "loglik_less"]
    rows: list[list[Any]] = []
    for section, row in [*(("bias_type", r) for r in result.get("per_type", [])), ("overall", result.get("overall"))]:
        if row:
            rows.append([section, row["bias_type"], row["pairs"], row["preference_rate"], *row["ci95"],
                         row["mean_loglik_difference"], row["verdict"], "", "", "", ""])
    for p in result.get("pairs", []):
        rows.append(["pair", p["bias_type"], "", "", "", "", "", "", p["sent_more"], p["sent_less"], p["loglik_more"],
                     p["loglik_less"]])
    return header, rows


def report_table(kind: str, result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Tabular: one row per group, then one per disparity. Text: one row per identity term. Probes and
    pairs (generative models): see their tables."""
    if kind == "probes":
        return _probes_table(result)
    if kind == "pairs":
        return _pairs_table(result)
    if kind == "tabular":
        header = ["section", "axis", "group_or_metric", "count", "too_small", *GROUP_METRICS,
                  "value", "ci95_low", "ci95_high", "verdict"]
        rows: list[list[Any]] = []
        for axis in result.get("axes", []):
            for group in axis["groups"]:
                rows.append(["group", axis["axis"], group["group"], group["count"], group["too_small"],
                             *[group[m] for m in GROUP_METRICS], "", "", "", ""])
            for name, d in axis["disparities"].items():
                rows.append(["disparity", axis["axis"], name, "", "", *[""] * len(GROUP_METRICS),
                             d["value"], d["ci95"][0], d["ci95"][1], d["verdict"]])
        return header, rows
    columns = ["term", "mean_score", "score_shift", "flip_rate", "subgroup_auc", "bpsn_auc", "bnsp_auc"]
    header = [*columns, "shift_ci95_low", "shift_ci95_high", "flip_ci95_low", "flip_ci95_high"]
    return header, [[row.get(c) for c in columns] + [*row["score_shift_ci95"], *row["flip_rate_ci95"]]
                    for row in result.get("per_term", [])]


def report_csv(report: BiasReport) -> str:
    out = io.StringIO()
    writer = csvsafe.writer(out)
    header, rows = report_table(report.kind, report.result or {})
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
