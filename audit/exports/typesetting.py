"""The PDF report's type: fonts (Bitstream Vera, shipped inside ReportLab and embedded in the
file, no system package; Chinese and Japanese text in Adobe's STSong-Light, a standard CID font that
PDF readers supply, so nothing is embedded for it), colours, number formats, and the builder the
sections write into."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

FONT, BOLD, ITALIC = "StewardVera", "StewardVera-Bold", "StewardVera-Italic"
# Han characters, kana, bopomofo and full-width forms: what Vera lacks and Adobe-GB1 (GB 18030) draws
CJK_FONT = "STSong-Light"
CJK_RANGES = ((0x3000, 0x303F), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
              (0xF900, 0xFAFF), (0xFF00, 0xFFEF))
# The charts get a font of their own: svglib registers a family for each font it draws with, which
# would otherwise replace the bold face of the text's family.
CHART_FONT = "StewardChart"
INK = "#1d2733"
MUTED = "#5b6778"
SEVERITY_COLOURS = {"high": "#b3261e", "medium": "#b7791f", "low": "#5b6778"}
STATUS_COLOURS = {"present": "#1e7b45", "partial": "#b7791f", "missing": "#b3261e"}
VERDICT_COLOURS = {"pass": "#1e7b45", "warn": "#b7791f", "fail": "#b3261e"}
CHART_STYLE = (
    "<style>.axis{stroke:#8a97a8}.grid{stroke:#e7ecf2}.tick{fill:#5b6778;font-size:11px}.label{fill:#1d2733}"
    ".value{fill:#1d2733}.cbar{fill:#4a78b5}.cbar-low{fill:#c0504d}.cbar-up{fill:#c0504d}.cbar-down{fill:#4a78b5}"
    ".whisker{stroke:#1d2733;stroke-width:1.2}.threshold{stroke:#b7791f;stroke-dasharray:4 3;stroke-width:1.5}"
    ".xbar-up{fill:#d66020}.xbar-down{fill:#2c6eb4}text{font-family:StewardChart;font-size:12px}</style>"
)


@cache
def fonts() -> frozenset[int]:
    """Registers the embedded fonts once; returns the code points they can draw."""
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    folder = Path(reportlab.__file__).parent / "fonts"
    regular = TTFont(FONT, str(folder / "Vera.ttf"))
    for font in (regular, TTFont(BOLD, str(folder / "VeraBd.ttf")), TTFont(ITALIC, str(folder / "VeraIt.ttf")),
                 TTFont(CHART_FONT, str(folder / "Vera.ttf"))):
        pdfmetrics.registerFont(font)
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=ITALIC, boldItalic=BOLD)
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    # one face: a <b> around Chinese text keeps the face rather than failing to find a bold one
    pdfmetrics.registerFontFamily(CJK_FONT, normal=CJK_FONT, bold=CJK_FONT, italic=CJK_FONT, boldItalic=CJK_FONT)
    return frozenset(regular.face.charToGlyph)


def _cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def clean(text: Any) -> str:
    """Plain text made safe for a Paragraph: markup escaped, Chinese and Japanese runs set in the CID
    font, any other character the fonts lack replaced by '?' (never dropped: a reader sees something is there)."""
    drawable = fonts()
    value = "" if text is None else str(text)
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(f'<font name="{CJK_FONT}">{escape("".join(run))}</font>')
            run.clear()

    for char in value:
        if _cjk(char) and ord(char) not in drawable:
            run.append(char)
            continue
        flush()
        out.append(escape(char) if ord(char) in drawable or char in "\n\t" else "?")
    flush()
    return "".join(out).replace("\n", "<br/>")


def cjk_runs(markup: str) -> str:
    """Paragraph markup whose Chinese and Japanese runs outside tags are set in the CID font: the
    report's own sentences, translated, hold Chinese too (what `clean` does for the evidence)."""
    out: list[str] = []
    run: list[str] = []
    in_tag = False

    def flush() -> None:
        if run:
            out.append(f'<font name="{CJK_FONT}">{"".join(run)}</font>')
            run.clear()

    for char in markup:
        if char == "<":
            in_tag = True
        if not in_tag and _cjk(char) and ord(char) not in fonts():
            run.append(char)
            continue
        flush()
        out.append(char)
        if char == ">":
            in_tag = False
    flush()
    return "".join(out)


def has_cjk(text: str) -> bool:
    return any(_cjk(char) for char in text)


def num(value: Any, digits: int = 4) -> str:
    from django.utils.translation import gettext

    if value is None:
        return gettext("n/a")
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


class Builder:
    def __init__(self, document: dict[str, Any]) -> None:
        from reportlab.lib.styles import ParagraphStyle

        fonts()
        self.doc = document
        self.story: list[Any] = []
        base = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=13, textColor=INK, spaceAfter=4)
        self.styles = {
            "body": base,
            "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10.5, textColor=MUTED),
            "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10, spaceAfter=0),
            "title": ParagraphStyle("title", parent=base, fontName=BOLD, fontSize=22, leading=28, spaceAfter=10),
            "h1": ParagraphStyle("h1", parent=base, fontName=BOLD, fontSize=15, leading=20, spaceBefore=12,
                                 spaceAfter=6),
            "h2": ParagraphStyle("h2", parent=base, fontName=BOLD, fontSize=11.5, leading=15, spaceBefore=8,
                                 spaceAfter=4),
        }

    # -- primitives
    def p(self, text: str, style: str = "body") -> None:
        from reportlab.platypus import Paragraph

        self.story.append(Paragraph(cjk_runs(text), self.styles[style]))

    def heading(self, text: str, level: int = 1) -> None:
        from reportlab.platypus import Paragraph

        style = "h1" if level == 1 else "h2"
        para = Paragraph(clean(text), self.styles[style])
        para._bookmark = (text, level)  # type: ignore[attr-defined]  # picked up by the outline hook
        self.story.append(para)

    def table(self, header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> None:
        from reportlab.lib import colors
        from reportlab.platypus import Paragraph, Table, TableStyle

        cell = self.styles["cell"]
        data = [[Paragraph(f"<b>{clean(h)}</b>", cell) for h in header]]
        for row in rows:
            data.append([Paragraph(cjk_runs(v) if isinstance(v, Markup) else clean(num(v)), cell) for v in row])
        table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        style = [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#c9d2dd")),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f7")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ]
        table.setStyle(TableStyle(style))
        self.story.append(table)
        self.spacer(6)

    def spacer(self, height: float) -> None:
        from reportlab.platypus import Spacer

        self.story.append(Spacer(1, height))

    def chart(self, markup: str) -> None:
        """A portal SVG chart, drawn as vectors at the text width."""
        from reportlab.lib.units import cm
        from svglib.svglib import svg2rlg

        if not markup:
            return
        try:
            height = markup.split('viewBox="0 0 ', 1)[1].split('"', 1)[0].split()[1]
        except IndexError:
            return
        drawable = fonts()
        text = "".join(ch if ord(ch) in drawable or ch in "\n\t" else "" for ch in markup)
        text = text.replace('width="100%"', f'width="640" height="{height}"', 1)
        at = text.find("</desc>")
        text = text[: at + 7] + CHART_STYLE + text[at + 7:] if at >= 0 else text
        drawing = svg2rlg(io.BytesIO(text.encode()))
        if drawing is None:
            return
        scale = min(1.0, (17 * cm) / drawing.width)
        drawing.scale(scale, scale)
        drawing.width, drawing.height = drawing.width * scale, drawing.height * scale
        self.story.append(drawing)
        self.spacer(4)


class Markup(str):
    """A table cell that is already Paragraph markup (escaped by whoever built it)."""


# the words the report shows for its codes (the same words as the portal's pages)
MARK_WORDS = {"pass": "pass", "warn": "warn", "fail": "fail", "high": "high", "medium": "medium", "low": "low",
              "present": "present", "partial": "partial", "missing": "missing"}


def status_mark(value: str, colours: dict[str, str]) -> Markup:
    from django.utils.translation import gettext

    word = gettext(MARK_WORDS[value]) if value in MARK_WORDS else value
    return Markup(f'<font color="{colours.get(value, INK)}"><b>{clean(word)}</b></font>')
