"""A finished bias report as a JSON document and as one CSV table (for people's spreadsheets)."""

from __future__ import annotations

import csv
import io
from typing import Any

from audit.fairness.metrics import GROUP_METRICS
from audit.fairness.models import BiasReport


def report_document(report: BiasReport) -> dict[str, Any]:
    return {
        "report": {"id": report.pk, "number": report.number, "kind": report.kind, "verdict": report.verdict,
                   "created_by": report.created_by.username, "created_at": report.created_at.isoformat(),
                   "finished_at": report.finished_at.isoformat() if report.finished_at else None,
                   "params": report.params},
        **(report.result or {}),
    }


def report_csv(report: BiasReport) -> str:
    """Tabular: one row per group, then one per disparity. Text: one row per identity term."""
    out = io.StringIO()
    writer = csv.writer(out)
    result = report.result or {}
    if report.kind == "tabular":
        writer.writerow(["section", "axis", "group_or_metric", "count", "too_small", *GROUP_METRICS,
                         "value", "ci95_low", "ci95_high", "verdict"])
        for axis in result.get("axes", []):
            for group in axis["groups"]:
                writer.writerow(["group", axis["axis"], group["group"], group["count"], group["too_small"],
                                 *[group[m] for m in GROUP_METRICS], "", "", "", ""])
            for name, d in axis["disparities"].items():
                writer.writerow(["disparity", axis["axis"], name, "", "", *[""] * len(GROUP_METRICS),
                                 d["value"], d["ci95"][0], d["ci95"][1], d["verdict"]])
    else:
        columns = ["term", "mean_score", "score_shift", "score_shift_ci95", "flip_rate", "flip_rate_ci95",
                   "subgroup_auc", "bpsn_auc", "bnsp_auc"]
        writer.writerow([c for c in columns if not c.endswith("ci95")] + ["shift_ci95_low", "shift_ci95_high",
                                                                         "flip_ci95_low", "flip_ci95_high"])
        for row in result.get("per_term", []):
            writer.writerow([row.get(c) for c in columns if not c.endswith("ci95")]
                            + [*row["score_shift_ci95"], *row["flip_rate_ci95"]])
    return out.getvalue()
