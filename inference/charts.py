"""The pictures of explanations: a heat map over the words, a waterfall over features, a global bar chart.

Colour says the direction (orange: towards the explained label, blue: away from it), and never alone:
every word carries its value on hover and in the table under it, and the heat map underlines
pushes towards the label solidly and pushes away with dots.
"""

from __future__ import annotations

from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from portal.platform.svg import WIDTH, axis, fit_label, left_margin, svg

ROW = 24
TOWARDS, AWAY = (214, 96, 32), (44, 110, 180)  # orange, blue: readable by the common colour-blindnesses


def _tint(value: float, reach: float) -> str:
    rgb = TOWARDS if value > 0 else AWAY
    alpha = 0.0 if reach <= 0 else min(abs(value) / reach, 1.0) * 0.75
    return f"rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.2f})"


def _pushed(name: str, value: str, direction: float, label: str) -> str:
    """"word: +0.1234 (towards positive)", in the reader's language."""
    said = {"name": name, "value": value, "label": label}
    if direction > 0:
        return _("%(name)s: %(value)s (towards %(label)s)") % said
    if direction < 0:
        return _("%(name)s: %(value)s (away from %(label)s)") % said
    return _("%(name)s: %(value)s (neutral to %(label)s)") % said


def word_heat_map(words: list[dict[str, Any]], label: str) -> SafeString:
    """The text as it was written, each word tinted by its attribution towards `label`."""
    reach = max((abs(w["value"]) for w in words), default=0.0)
    spans = []
    for word in words:
        value = float(word["value"])
        kind = "pos" if value > 0 else "neg" if value < 0 else "zero"
        said = _pushed(word["word"], f"{value:+.4f}", value, label)
        spans.append(
            f'<span class="w {kind}" style="background: {_tint(value, reach)}" tabindex="0" '
            f'title="{escape(said)}">{escape(word["word"])}</span>'
        )
    return mark_safe(" ".join(spans))  # noqa: S308  (words and label escaped above)


def waterfall(explanation: dict[str, Any], *, top: int = 12) -> SafeString:
    """From the base value to the model's output for the explained label, one bar per feature."""
    labels = explanation["labels"]
    index = labels.index(explanation["label"])
    base, output = explanation["base_values"][index], explanation["output"][index]
    items = [(f"{name} = {value}", v[index]) for name, value, v in
             zip(explanation["features"], explanation.get("feature_values") or [""] * len(explanation["features"]),
                 explanation["values"], strict=True)]
    items.sort(key=lambda item: -abs(item[1]))
    if len(items) > top:
        rest = sum(v for _name, v in items[top - 1:])
        items = [*items[: top - 1], (_("%(count)s other features") % {"count": len(items) - top + 1}, rest)]
    running = [base]
    for _name, value in items:
        running.append(running[-1] + value)
    low, high = min(*running, 0.0), max(*running, output)
    span = (high - low) or 1.0
    low, high = low - 0.05 * span, high + 0.05 * span
    height = 30 + ROW * (len(items) + 2) + 30
    output_label = _("output f(x) for %(label)s") % {"label": explanation["label"]}
    base_label = _("base value E[f(x)]")
    left = left_margin([base_label, output_label, *(name for name, _value in items)])
    plot = WIDTH - left - 70

    def scale(value: float) -> float:
        return round(left + plot * (value - low) / (high - low), 1)

    ticks = [low + (high - low) * i / 4 for i in range(5)]
    parts = axis(left, left + plot, 20, height - 30, ticks, "{:.2f}", scale)
    parts.append(f'<line x1="{scale(base)}" y1="16" x2="{scale(base)}" y2="{height - 30}" class="threshold"/>')
    parts.append(f'<text x="{left - 8}" y="{24 + 13}" text-anchor="end" class="label">{escape(base_label)}</text>')
    parts.append(f'<text x="{scale(base) + 4}" y="{24 + 13}" class="value">{base:.3f}</text>')
    for i, (name, value) in enumerate(items):
        y = 24 + (i + 1) * ROW
        x0, x1 = sorted((scale(running[i]), scale(running[i + 1])))
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">{escape(fit_label(name))}</text>')
        parts.append(f'<rect x="{x0}" y="{y + 3}" width="{max(x1 - x0, 1)}" height="14" '
                     f'class="cbar {"xbar-up" if value > 0 else "xbar-down"}"><title>'
                     f'{escape(_pushed(name, f"{value:+.4f}", value, explanation["label"]))}</title></rect>')
        parts.append(f'<text x="{max(x1, x0 + 1) + 4}" y="{y + 13}" class="value">{value:+.3f}</text>')
    y = 24 + (len(items) + 1) * ROW
    parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">'
                 f'{escape(fit_label(output_label))}</text>')
    parts.append(f'<line x1="{scale(output)}" y1="{y}" x2="{scale(output)}" y2="{y + 18}" class="whisker"/>')
    parts.append(f'<text x="{scale(output) + 4}" y="{y + 13}" class="value">{output:.3f}</text>')
    description = "; ".join([_("base %(value)s") % {"value": f"{base:.4f}"}, *(f"{n}: {v:+.4f}" for n, v in items),
                             _("output %(value)s") % {"value": f"{output:.4f}"}])
    return svg(height, _("How each feature moved the probability of %(label)s") % {"label": explanation["label"]},
               description, parts)


def global_bars(ranking: list[dict[str, Any]], *, kind: str, top: int = 15) -> SafeString:
    """Mean |SHAP| per feature or word, largest first."""
    rows = ranking[:top]
    if not rows:
        return mark_safe("")
    reach = max(r["mean_abs"] for r in rows) or 1.0
    height = 30 + ROW * len(rows) + 30
    left = left_margin([r["name"] for r in rows])
    plot = WIDTH - left - 70

    def scale(value: float) -> float:
        return round(left + plot * value / (reach * 1.1), 1)

    parts = axis(left, left + plot, 20, height - 30, [reach * 1.1 * i / 4 for i in range(5)], "{:.3f}", scale)
    for i, row in enumerate(rows):
        y = 24 + i * ROW
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">'
                     f'{escape(fit_label(row["name"]))}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(scale(row["mean_abs"]) - left, 1)}" height="14" '
                     f'class="cbar"><title>{escape(_mean_shap(row))}</title></rect>')
        parts.append(f'<text x="{scale(row["mean_abs"]) + 4}" y="{y + 13}" class="value">{row["mean_abs"]:.3f}</text>')
    description = "; ".join(f"{r['name']}: {r['mean_abs']:.4f}" for r in rows)
    title = _("Mean |SHAP| per word over the sample") if kind == "word" else _("Mean |SHAP| per feature over the sample")
    return svg(height, title, description, parts)


def _mean_shap(row: dict[str, Any]) -> str:
    return _("%(name)s: mean |SHAP| %(value)s, in %(rows)s rows") % {
        "name": row["name"], "value": f"{row['mean_abs']:.4f}", "rows": row["occurrences"]}


def usage_columns(daily: list[dict[str, Any]], *, key: str = "rows", unit: str = "rows",
                  title: str | None = None, digits: int = 0) -> SafeString:
    """A figure per day (rows served by default): one column a day, the axis labelled every week, never clipped."""
    title = title or _("Rows served per day")
    height, top, bottom, left, right = 220, 16, 180, 56, WIDTH - 12
    peak = max([d[key] for d in daily] + [0]) or 1
    step = (right - left) / max(len(daily), 1)
    parts = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>']
    for fraction in (0.5, 1.0):
        y = bottom - (bottom - top) * fraction
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{peak * fraction:,.{digits}f}</text>')
    for i, day in enumerate(daily):
        h = (bottom - top) * day[key] / peak
        x = left + i * step
        said = (_("%(rows)s rows, %(requests)s requests") % {"rows": day["rows"], "requests": day["requests"]}
                if key == "rows" else f"{day[key]:,.{digits}f} {unit}")
        parts.append(f'<rect x="{x + 1:.1f}" y="{bottom - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                     f'class="cbar"><title>{escape(day["day"])}: {escape(said)}'
                     "</title></rect>")
        if i % 7 == 0 or i == len(daily) - 1:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{bottom + 16}" text-anchor="middle" class="tick">'
                         f'{escape(day["day"][5:])}</text>')
    return svg(height, title, _("%(title)s from %(start)s to %(end)s; the table below lists them.") % {
        "title": title, "start": daily[0]["day"], "end": daily[-1]["day"]}, parts)


def total_bars(items: list[tuple[str, float]], *, title: str, unit: str) -> SafeString:
    """A period's totals (e.g. rows per token), largest first, one bar each."""
    if not items:
        return mark_safe("")
    reach = max(value for _, value in items) or 1.0
    height = 30 + ROW * len(items) + 30
    left = left_margin([name for name, _ in items])
    plot = WIDTH - left - 70

    def scale(value: float) -> float:
        return round(left + plot * value / (reach * 1.1), 1)

    parts = axis(left, left + plot, 20, height - 30, [reach * 1.1 * i / 4 for i in range(5)], "{:,.0f}", scale)
    for i, (name, value) in enumerate(items):
        y = 24 + i * ROW
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="label">{escape(fit_label(name))}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(scale(value) - left, 1)}" height="14" class="cbar">'
                     f"<title>{escape(name)}: {value:,.0f} {escape(unit)}</title></rect>")
        parts.append(f'<text x="{scale(value) + 4}" y="{y + 13}" class="value">{value:,.0f}</text>')
    return svg(height, title, "; ".join(f"{name}: {value:,.0f} {unit}" for name, value in items), parts)
