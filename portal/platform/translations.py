"""The portal's translations: compiled from the repository's catalogues, and checked for completeness.

Compiling needs no GNU gettext (polib writes the .mo files), so `make run` works on a machine without
it; the completeness check extracts messages with Django's makemessages, which does need xgettext (CI
installs gettext).
"""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.template.base import Lexer, TokenType

ROOT = Path(__file__).resolve().parent.parent.parent
LOCALE = ROOT / "locale"
TEMPLATES = ROOT / "templates"
DOMAINS = ("django", "djangojs")  # templates and Python; the portal's scripts
# Read by people: these attributes are translated as text is.
TEXT_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "label"}
# Words that stay as they are in every language: names and acronyms.
UNTRANSLATED_WORDS = {
    "Steward", "API", "SHAP", "JSON", "CSV", "PDF", "ONNX", "LoRA", "OpenAI", "GGUF", "ID", "URL", "SQL",
    "GPU", "CPU", "int8", "float32", "Opacus", "MiniLM", "SmolLM2", "SHA-256", "eps", "ms", "s",
    "GiB", "MiB", "KB", "MB", "GB", "TPR", "FPR", "AUC", "BPSN", "BNSP", "UTC", "CO2e", "Wh", "kWh", "g", "NIST", "AI", "RMF",
    "v", "x",  # v3: a version; x1.5: a factor, in any language
}
# Not prose: programs, code and commands as typed, and a textarea's sample input (data for the model).
SKIPPED = {"script", "style", "textarea", "code", "pre", "kbd", "samp"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*")


def compile_catalogues(locale: Path = LOCALE) -> list[Path]:
    """Every .po under `locale` compiled to its .mo where the .mo is missing or older; returns those
    written."""
    import polib

    written = []
    for po_path in sorted(locale.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        catalogue = polib.pofile(str(po_path))
        temporary = mo_path.with_suffix(".mo.tmp")
        catalogue.save_as_mofile(str(temporary))
        temporary.replace(mo_path)  # a reader never sees half a file
        written.append(mo_path)
    return written


@dataclass(frozen=True)
class Unmarked:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r} is not marked for translation"


def _needs_translation(text: str) -> bool:
    return any(word not in UNTRANSLATED_WORDS for word in WORD.findall(text))


class _TextFinder(html.parser.HTMLParser):
    """The text a reader sees in a piece of HTML, outside SKIPPED, and the attributes read by people,
    each with the line it is on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, int]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            self._skip += 1
        shown_value = tag == "input" and dict(attrs).get("type") in {"submit", "button", "reset"}
        for name, value in attrs:
            if value and (name in TEXT_ATTRIBUTES or (name == "value" and shown_value)):
                self.found.append((value, self.getpos()[0]))

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append((data, self.getpos()[0]))


VARIABLE, MARKED = "\x01", "\x02"  # placeholders without letters: a value, a translated piece


def unmarked_strings(template: Path, *, name: str = "") -> list[Unmarked]:
    """Text in a template that a reader sees and that is not inside {% translate %} or
    {% blocktranslate %}. The template is read as the HTML it renders: a value ({{ }}) stands for
    itself inside the sentence around it (such a sentence belongs in a blocktranslate), a tag ({% %})
    for nothing, a translated piece for marked text."""
    pieces: list[str] = []
    inside = None  # "blocktranslate" or "comment" while inside one
    for token in Lexer(template.read_text()).tokenize():
        newlines = "\n" * token.contents.count("\n")
        if token.token_type == TokenType.BLOCK:
            word = (token.contents.split() or [""])[0]
            if word in {"blocktranslate", "blocktrans", "comment"}:
                inside = word
                pieces.append(MARKED if word != "comment" else "")
            elif word in {"endblocktranslate", "endblocktrans", "endcomment"}:
                inside = None
            elif word in {"translate", "trans"}:
                pieces.append(MARKED)
            else:
                pieces.append(" ")
            pieces.append(newlines)
        elif inside:
            pieces.append(newlines)
        elif token.token_type == TokenType.VAR:
            pieces.append(VARIABLE + newlines)
        elif token.token_type == TokenType.TEXT:
            pieces.append(token.contents)
        else:  # a {# comment #}
            pieces.append(newlines)
    finder = _TextFinder()
    finder.feed("".join(pieces))
    finder.close()
    return [Unmarked(name or str(template), line, " ".join(text.replace(VARIABLE, "{{…}}").split()))
            for text, line in finder.found if _needs_translation(text)]


def templates_unmarked(templates: Path = TEMPLATES) -> list[Unmarked]:
    found: list[Unmarked] = []
    for path in sorted(templates.rglob("*.html")):
        found += unmarked_strings(path, name=str(path.relative_to(templates.parent)))
    return found


@dataclass(frozen=True)
class CatalogueProblem:
    language: str
    kind: str  # "missing" (in the code, not in the catalogue), "untranslated", "fuzzy", "obsolete"
    msgid: str

    def __str__(self) -> str:
        return f"{self.language}: {self.kind}: {self.msgid[:120]!r}"


def catalogue_problems(languages: list[str], root: Path = ROOT) -> list[CatalogueProblem]:
    """The catalogues as makemessages would write them from the code today, compared with the
    committed ones: a message in the code missing from a catalogue, one left untranslated or fuzzy, or
    one the code no longer has. Extraction runs on a copy, so the repository is never written."""
    import polib

    if shutil.which("xgettext") is None:
        raise RuntimeError("GNU gettext (xgettext) is needed to extract messages: apt-get install gettext")
    problems: list[CatalogueProblem] = []
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "steward"
        ignore = shutil.ignore_patterns(".venv", "var", "node_modules", "__pycache__", ".git", "*.mo", "bench", "tests")
        shutil.copytree(root, copy, ignore=ignore, symlinks=True)
        for domain in DOMAINS:
            subprocess.run(
                [sys.executable, "manage.py", "makemessages", f"--domain={domain}", "--no-obsolete",
                 "--add-location=file", "--ignore=.venv/*", "--ignore=var/*", "--ignore=*.min.js",
                 *[f"--locale={lang}" for lang in languages]],
                cwd=copy, check=True, capture_output=True, text=True,
                env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "portal.settings",
                     "PYTHONPATH": str(copy)},
            )
        for language, domain in ((lang, domain) for lang in languages for domain in DOMAINS):
            committed_path = root / "locale" / language / "LC_MESSAGES" / f"{domain}.po"
            committed = polib.pofile(str(committed_path)) if committed_path.exists() else polib.POFile()
            fresh = polib.pofile(str(copy / "locale" / language / "LC_MESSAGES" / f"{domain}.po"))
            have = {(entry.msgctxt, entry.msgid) for entry in committed if not entry.obsolete}
            want = {(entry.msgctxt, entry.msgid) for entry in fresh}
            for entry in fresh:
                if (entry.msgctxt, entry.msgid) not in have:
                    problems.append(CatalogueProblem(language, "missing", entry.msgid))
                elif "fuzzy" in entry.flags:
                    problems.append(CatalogueProblem(language, "fuzzy", entry.msgid))
                elif not entry.translated():
                    problems.append(CatalogueProblem(language, "untranslated", entry.msgid))
                elif not placeholders_kept(entry):
                    problems.append(CatalogueProblem(language, "placeholders", entry.msgid))
            for _context, msgid in sorted(have - want, key=lambda key: key[1]):
                problems.append(CatalogueProblem(language, "obsolete", msgid))
    return problems


PENDING = LOCALE / "pending-templates.txt"


def pending_templates(path: Path = PENDING) -> set[str]:
    """Templates whose text is not yet marked (the translation's work still to do): the check allows
    their unmarked text, and the portal offers no language but English while any is listed."""
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def template_problems(templates: Path = TEMPLATES, pending: set[str] | None = None) -> list[str]:
    """Unmarked text outside the pending templates, and pending templates that have none left (to be
    struck from the list, so that it only shrinks)."""
    pending = pending_templates() if pending is None else pending
    found = templates_unmarked(templates)
    with_text = {item.path for item in found}
    problems = [str(item) for item in found if item.path not in pending]
    problems += [f"{name}: every string is marked: strike it from {PENDING.name}"
                 for name in sorted(pending - with_text)]
    return problems


PLACEHOLDER = re.compile(r"%\((\w+)\)[sdrf]|%[sd]|\{(\w+)\}")


def placeholders(text: str) -> list[str]:
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def placeholders_kept(entry: Any) -> bool:
    """A translation fills in the values its source names, no other (a name it invents would raise
    KeyError when the message is formatted; one it drops loses a value)."""
    translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
    wanted = set(placeholders(entry.msgid_plural or entry.msgid))
    return all(set(placeholders(text)) == wanted for text in translations)
