"""Charts never clip a label: the left margin is what the longest label needs (bias reports, explanations, usage)."""

from __future__ import annotations

import re

from audit.fairness.charts import identity_shift_chart, selection_rate_chart
from portal.platform.svg import CHAR, LABEL_MAX


def _labels(svg: str) -> list[tuple[float, str]]:
    return [(float(x), text) for x, text in re.findall(r'<text x="([\d.]+)"[^>]*class="label">([^<]*)</text>', svg)]


def group(name: str, rate: float) -> dict:
    return {"group": name, "count": 120, "too_small": False, "selection_rate": rate,
            "selection_rate_ci95": [rate - 0.05, rate + 0.05]}


def test_long_intersectional_groups_are_drawn_whole_inside_the_chart() -> None:
    axis = {"axis": "sex x race", "groups": [group("Male x Asian-Pac-Islander", 0.31), group("Female x Black", 0.12),
                                             group("Female x Amer-Indian-Eskimo x over 65 and retired", 0.2)]}
    svg = str(selection_rate_chart(axis))
    labels = _labels(svg)
    assert labels[0][1] == "Male x Asian-Pac-Islander (120)"  # whole, not "ale x ..."
    for right_edge, text in labels:  # right-aligned at x: its left end must stay inside the picture
        assert right_edge - CHAR * len(text) >= 0, text
    assert max(len(text) for _, text in labels) <= LABEL_MAX and "…" in labels[2][1]
    assert "Female x Amer-Indian-Eskimo x over 65 and retired" in svg  # whole in the bar's tooltip


def test_identity_terms_get_the_same_care() -> None:
    rows = [{"term": term, "score_shift": shift, "score_shift_ci95": [shift - 0.01, shift + 0.01], "flip_rate": 0.0}
            for term, shift in (("Native Hawaiian and Pacific Islander", 0.04), ("gay", -0.02))]
    for right_edge, text in _labels(str(identity_shift_chart(rows))):
        assert right_edge - CHAR * len(text) >= 0, text


def test_explanation_and_usage_charts_keep_their_labels_whole() -> None:
    from inference.charts import global_bars, total_bars, waterfall

    explanation = {"labels": ["deny", "grant"], "label": "grant", "base_values": [0.5, 0.5], "output": [0.2, 0.8],
                   "features": ["number of previous loan applications", "region"], "feature_values": [12, "north"],
                   "values": [[-0.25, 0.25], [-0.05, 0.05]]}
    ranking = [{"name": "capital-loss of the household last year", "mean_abs": 0.2, "occurrences": 10}]
    for chart in (waterfall(explanation), global_bars(ranking, kind="feature"),
                  total_bars([("claims service of the north region", 120.0), ("batch", 4.0)], title="Rows", unit="rows")):
        labels = _labels(str(chart))
        assert labels and all(x - CHAR * len(text) >= 0 for x, text in labels), labels
