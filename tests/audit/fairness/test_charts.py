"""The bias report's charts never clip a label: the left margin is what the longest label needs."""

from __future__ import annotations

import re

from audit.fairness.charts import CHAR, LABEL_MAX, identity_shift_chart, selection_rate_chart


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
