"""Sentences stored in English said again in the reader's language.

A worker answers no reader: what it stores (a job's error, a verification's summary) is in English,
gettext's source language, each sentence made from a message of the catalogue with its values put in.
`said` finds the message a stored sentence was made from (the sentence itself, or the message with
placeholders whose fixed words match it, the most specific first) and says it in the active language
with the same values. A sentence the catalogue does not know is shown as stored, so nothing is lost.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@cache
def _messages() -> list[tuple[str, str, re.Pattern[str], str]]:
    """Every message of the catalogue with a placeholder, as a pattern over the sentences it makes."""
    import polib

    found: list[tuple[int, str, str, re.Pattern[str], str]] = []
    catalogues = sorted(p for folder in settings.LOCALE_PATHS for p in Path(folder).glob("*/LC_MESSAGES/django.po"))
    if not catalogues:
        return []
    for entry in polib.pofile(str(catalogues[0])):  # every catalogue holds the same messages
        if entry.obsolete or entry.msgid_plural or not PLACEHOLDER.search(entry.msgid):
            continue
        pattern, seen, fixed, at = [], set(), 0, 0
        for match in PLACEHOLDER.finditer(entry.msgid):
            literal = entry.msgid[at:match.start()].replace("%%", "%")
            pattern.append(re.escape(literal))
            fixed += len(literal)
            name = match.group(1)
            pattern.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
            at = match.end()
        literal = entry.msgid[at:].replace("%%", "%")
        pattern.append(re.escape(literal))
        fixed += len(literal)
        if fixed >= 6:  # a message of placeholders (and a colon) alone would match anything
            head = entry.msgid[:PLACEHOLDER.search(entry.msgid).start()].replace("%%", "%")  # type: ignore[union-attr]
            found.append((fixed, head, literal, re.compile("".join(pattern), re.DOTALL), entry.msgid))
    found.sort(key=lambda item: -item[0])
    return [(head, tail, pattern, msgid) for _, head, tail, pattern, msgid in found]


def said(text: str) -> str:
    """`text` (stored in English) in the active language, or as stored."""
    language = translation.get_language() or settings.LANGUAGE_CODE
    if not text or language.startswith("en"):
        return text
    return _said(str(text), language, 2)


@lru_cache(maxsize=4096)
def _said(text: str, language: str, depth: int) -> str:
    with translation.override(language):
        exact = gettext(text)
        if exact != text:
            return exact
        for head, tail, pattern, msgid in _messages():
            if not (text.startswith(head) and text.endswith(tail)):
                continue  # the fixed ends first: the patterns' search is then rarely tried
            match = pattern.fullmatch(text)
            if match is not None:
                values = {name: _said(value, language, depth - 1) if depth > 0 else value
                          for name, value in match.groupdict().items()}
                return gettext(msgid) % values
    return text
