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


def report_table(kind: str, result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Tabular: one row per group, then one per disparity. Text: one row per identity term."""
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
