"""The charts of a bias report (drawn by portal.platform.svg; the same numbers are in the tables under them)."""

from __future__ import annotations

from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.platform.svg import WIDTH, fit_label, left_margin, svg
from portal.platform.svg import axis as draw_axis

ROW = 26


def _whisker(scale: Any, y: float, low: float | None, high: float | None) -> list[str]:
    """A 95% interval drawn across a bar at row `y`, with end caps (nothing when it is unknown)."""
    if low is None or high is None:
        return []
    return [f'<line x1="{scale(low)}" y1="{y + 10}" x2="{scale(high)}" y2="{y + 10}" class="whisker"/>',
            *(f'<line x1="{scale(end)}" y1="{y + 5}" x2="{scale(end)}" y2="{y + 15}" class="whisker"/>'
              for end in (low, high))]


def selection_rate_chart(axis: dict[str, Any]) -> SafeString:
    """Per-group selection rate with 95% whiskers and the four-fifths line (0.8 x the highest rate)."""
    groups = [g for g in axis["groups"] if not g["too_small"] and g["selection_rate"] is not None]
    if not groups:
        return mark_safe("")
    labels = [fit_label(f"{g['group']} ({g['count']})") for g in groups]
    left = left_margin(labels)
    plot = WIDTH - left - 60
    top = max(max((g["selection_rate_ci95"][1] or g["selection_rate"]) for g in groups), 0.05)
    limit = min(1.0, round(top * 1.15 + 0.05, 1))
    height = 30 + ROW * len(groups) + 30

    def scale(value: float) -> float:
        return round(left + plot * value / limit, 1)

    ticks = [limit * i / 4 for i in range(5)]
    parts = draw_axis(left, left + plot, 20, height - 30, ticks, "{:.2f}", scale)
    highest = max(g["selection_rate"] for g in groups)
    line = 0.8 * highest
    parts.append(f'<line x1="{scale(line)}" y1="14" x2="{scale(line)}" y2="{height - 30}" class="threshold"/>')
    said_line = _("four-fifths line %(value)s") % {"value": f"{line:.2f}"}
    parts.append(f'<text x="{scale(line) + 4}" y="12" class="tick">{escape(said_line)}</text>')
    for i, group in enumerate(groups):
        y = 24 + i * ROW
        rate = group["selection_rate"]
        low, high = group["selection_rate_ci95"]
        below = rate < line
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">{escape(labels[i])}</text>')
        said = {"group": group["group"], "rate": f"{rate:.3f}", "low": f"{low:.3f}", "high": f"{high:.3f}"}
        said_rate = (_("%(group)s: selection rate %(rate)s (95%% CI %(low)s to %(high)s), below the four-fifths line")
                     if below else _("%(group)s: selection rate %(rate)s (95%% CI %(low)s to %(high)s)")) % said
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(scale(rate) - left, 1)}" height="14" '
                     f'class="cbar {"cbar-low" if below else ""}"><title>{escape(said_rate)}</title></rect>')
        parts.extend(_whisker(scale, y, low, high))
        parts.append(f'<text x="{scale(high or rate) + 4}" y="{y + 13}" class="value">{rate:.3f}{" ▼" if below else ""}</text>')
    description = "; ".join(f"{g['group']}: {g['selection_rate']:.3f}" for g in groups)
    return svg(height, _("Selection rate by %(axis)s, with 95%% intervals") % {"axis": axis["axis"]}, description, parts)


def identity_shift_chart(per_term: list[dict[str, Any]]) -> SafeString:
    """Mean score shift per identity term (sorted), centred on zero, with 95% whiskers."""
    terms = sorted(per_term, key=lambda r: r["score_shift"] or 0)
    if not terms:
        return mark_safe("")
    reach = max(max(abs(v) for r in terms for v in r["score_shift_ci95"] if v is not None), 0.02)
    reach = round(reach * 1.1 + 0.005, 3)
    height = 30 + ROW * len(terms) + 30
    labels = [fit_label(row["term"]) for row in terms]
    left = left_margin(labels)
    plot = WIDTH - left - 60
    middle = left + plot / 2

    def scale(value: float) -> float:
        return round(middle + (plot / 2) * value / reach, 1)

    parts = draw_axis(left, left + plot, 20, height - 30, [-reach, -reach / 2, 0, reach / 2, reach], "{:+.3f}", scale)
    parts.append(f'<line x1="{middle}" y1="14" x2="{middle}" y2="{height - 30}" class="threshold"/>')
    for i, row in enumerate(terms):
        y = 24 + i * ROW
        shift = row["score_shift"] or 0
        low, high = row["score_shift_ci95"]
        x0, x1 = sorted((middle, scale(shift)))
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">{escape(labels[i])}</text>')
        said_shift = _("%(term)s: shift %(shift)s (95%% CI %(low)s to %(high)s), flip rate %(flips)s") % {
            "term": row["term"], "shift": f"{shift:+.4f}", "low": f"{low:+.4f}", "high": f"{high:+.4f}",
            "flips": f"{row['flip_rate']:.3f}"}
        parts.append(f'<rect x="{x0}" y="{y + 3}" width="{max(x1 - x0, 1)}" height="14" '
                     f'class="cbar {"cbar-up" if shift > 0 else "cbar-down"}"><title>{escape(said_shift)}</title></rect>')
        parts.append(f'<line x1="{scale(low)}" y1="{y + 10}" x2="{scale(high)}" y2="{y + 10}" class="whisker"/>')
        parts.append(f'<text x="{left + plot + 4}" y="{y + 13}" class="value">{shift:+.3f}</text>')
    description = "; ".join(f"{r['term']}: {r['score_shift']:+.4f}" for r in terms)
    return svg(height, _("Score shift per identity term against the template average, with %(level)s intervals") % {"level": "95%"},
               description, parts)


def interval_chart(rows: list[dict[str, Any]], *, label: str, value: str, interval: str, low: float, high: float,
                   reference: float | None, reference_label: str, title: str, unit: str = "{:.3f}",
                   bad_side: str = "") -> SafeString:
    """One bar per row from `reference` (or the axis' start) to its value, with the 95% whisker: the
    generative reports' per-group means and rates, and per-type preference rates around 50%. A bar on
    `bad_side` ("below" or "above") of the reference is drawn in the warning colour."""
    shown = [r for r in rows if r.get(value) is not None]
    if not shown:
        return mark_safe("")
    labels = [fit_label(str(r[label])) for r in shown]
    left = left_margin(labels)
    plot = WIDTH - left - 70
    height = 30 + ROW * len(shown) + 30

    def scale(v: float) -> float:
        return round(left + plot * (min(max(v, low), high) - low) / (high - low), 1)

    parts = draw_axis(left, left + plot, 20, height - 30, [low + (high - low) * i / 4 for i in range(5)], unit, scale)
    base = low if reference is None else reference
    if reference is not None:
        parts.append(f'<line x1="{scale(reference)}" y1="14" x2="{scale(reference)}" y2="{height - 30}" class="threshold"/>')
        parts.append(f'<text x="{scale(reference) + 4}" y="12" class="tick">{escape(reference_label)}</text>')
    for i, row in enumerate(shown):
        y = 24 + i * ROW
        v = float(row[value])
        ci_low, ci_high = row.get(interval) or (None, None)
        x0, x1 = sorted((scale(base), scale(v)))
        ci_text = "" if ci_low is None else " " + _("(95%% CI %(low)s to %(high)s)") % {
            "low": unit.format(ci_low), "high": unit.format(ci_high)}
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">{escape(labels[i])}</text>')
        bad = (bad_side == "below" and v < base) or (bad_side == "above" and v > base)
        parts.append(f'<rect x="{x0}" y="{y + 3}" width="{max(x1 - x0, 1)}" height="14" class="cbar'
                     f'{" cbar-low" if bad else ""}"><title>{escape(str(row[label]))}: '
                     f'{unit.format(v)}{ci_text}</title></rect>')
        parts.extend(_whisker(scale, y, ci_low, ci_high))
        parts.append(f'<text x="{left + plot + 4}" y="{y + 13}" class="value">{unit.format(v)}</text>')
    description = "; ".join(f"{r[label]}: {unit.format(float(r[value]))}" for r in shown)
    return svg(height, title, description, parts)


PROBE_CHARTS = (  # quantity, title, axis
    ("mean_sentiment", gettext_lazy("Mean sentiment of the completions per group (P(positive) - P(negative))"),
     (-1.0, 1.0), 0.0),
    ("negative_rate", gettext_lazy("Share of negative completions per group"), (0.0, 1.0), None),
    ("toxic_rate", gettext_lazy("Share of toxic completions per group (moderation model)"), (0.0, 1.0), None),
)


def probe_charts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The three per-group charts of a probes report, with 95% whiskers (groups too small left out)."""
    groups = [g for g in result.get("groups", []) if not g["too_small"]]
    return [{"quantity": q, "title": str(title), "chart": interval_chart(
        groups, label="group", value=q, interval=f"{q}_ci95", low=low, high=high, reference=ref,
        reference_label=_("neutral") if ref == 0.0 else "", title=str(title),
        unit="{:+.3f}" if q == "mean_sentiment" else "{:.3f}", bad_side="below" if ref is not None else "")}
        for q, title, (low, high), ref in PROBE_CHARTS]


def pairs_chart(result: dict[str, Any]) -> SafeString:
    """Per bias type, how often the stereotyping sentence is the likelier, around 50% (no preference)."""
    return interval_chart(result.get("per_type", []), label="bias_type", value="preference_rate", interval="ci95",
                          low=0.0, high=1.0, reference=0.5, reference_label=_("50%: no preference"),
                          title=_("Preference for the stereotyping sentence per bias type, with %(level)s intervals") % {"level": "95%"},
                          unit="{:.0%}", bad_side="above")
