"""Server-rendered SVG charts: the frame and axis every chart of the portal shares.

Charts are drawn on the server (no JavaScript, printable, embeddable in a PDF). Each has a title
and a description for screen readers, and the pages print the same numbers in a table under it,
so nothing is told by colour alone.
"""

from __future__ import annotations

import hashlib
from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
CHAR = 7.2  # width of a label's character at the charts' 12 px (Vera/DejaVu), a little generous
LABEL_MAX = 42  # longer labels end in an ellipsis; the whole label is in the mark's tooltip and the table


def fit_label(text: str) -> str:
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def left_margin(labels: list[str], *, least: int = 120) -> int:
    """The left margin that the longest (fitted) label needs, right-aligned 8 px from the plot: no label is clipped."""
    longest = max((len(fit_label(label)) for label in labels), default=0)
    return int(max(least, 16 + CHAR * longest))


def svg(height: int, title: str, description: str, body: list[str], *, width: int = WIDTH) -> SafeString:
    """The chart's frame; `body` is SVG markup whose texts the caller escaped."""
    uid = "c" + hashlib.sha1(f"{title}{description}".encode(), usedforsecurity=False).hexdigest()[:8]
    head = (f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{uid}t {uid}d">'
            f'<title id="{uid}t">{escape(title)}</title><desc id="{uid}d">{escape(description)}</desc>')
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308  (every text is escaped by the callers)


def axis(x0: float, x1: float, top: int, bottom: int, ticks: list[float], fmt: str, scale: Any) -> list[str]:
    """A horizontal axis at `bottom` with vertical grid lines at the ticks."""
    parts = [f'<line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" class="axis"/>']
    for tick in ticks:
        x = scale(tick)
        parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" class="grid"/>')
        parts.append(f'<text x="{x}" y="{bottom + 14}" text-anchor="middle" class="tick">{fmt.format(tick)}</text>')
    return parts
