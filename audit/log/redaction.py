"""PII redaction of audit payloads, before anything is stored.

Each finder validates what it finds (Luhn for cards, mod-97 for IBANs, libphonenumber's
validity rules for phone numbers) so that an order number or a timestamp that merely looks like
one stays readable for the auditor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import phonenumbers

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Candidates; the finders below validate them.
CARD = re.compile(r"(?<![\dA-Za-z-])(?:\d[ -]?){12,18}\d(?![\dA-Za-z-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# Numbers without a +country prefix are read as numbers of these regions.
DEFAULT_PHONE_REGIONS = ("GB", "US")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _redact_phones(text: str, regions: Sequence[str]) -> str:
    if sum(ch.isdigit() for ch in text) < 7:  # the common case, and libphonenumber is not free
        return text
    for region in regions:
        spans = [
            (match.start, match.end)
            for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
        ]
        for start, end in reversed(spans):
            text = text[:start] + "[PHONE]" + text[end:]
    return text


def redact_text(
    text: str,
    extra: Iterable[tuple[str, re.Pattern[str]]] = (),
    regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
) -> str:
    text = EMAIL.sub("[EMAIL]", text)
    text = IBAN.sub(lambda m: "[IBAN]" if iban_valid(m.group()) else m.group(), text)

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        return "[CARD]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else m.group()

    text = CARD.sub(card, text)
    text = _redact_phones(text, regions)
    for label, pattern in extra:
        text = pattern.sub(f"[{label}]", text)
    return text


def redact(value: Any, extra: Iterable[tuple[str, re.Pattern[str]]] = ()) -> Any:
    """Redacts every string inside a JSON value (keys are left as they are)."""
    extra = list(extra)
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, list):
        return [redact(item, extra) for item in value]
    if isinstance(value, dict):
        return {key: redact(item, extra) for key, item in value.items()}
    return value


def compile_rule(pattern: str) -> re.Pattern[str]:
    """Compiles an organisation's pattern, refusing ones that are invalid or match empty text."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    if compiled.match(""):
        raise ValueError("the pattern matches empty text, which would redact everything")
    return compiled
