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
    extra: Iterable[tuple[str, Any]] = (),
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


def redact(value: Any, extra: Iterable[tuple[str, Any]] = ()) -> Any:
    """Redacts every string inside a JSON value (keys are left as they are)."""
    extra = list(extra)
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, list):
        return [redact(item, extra) for item in value]
    if isinstance(value, dict):
        return {key: redact(item, extra) for key, item in value.items()}
    return value


RULE_MAX_LENGTH = 500
RULE_MAX_MEMORY = 8 << 20  # RE2's budget for one compiled pattern's automaton


def compile_rule(pattern: str) -> Any:
    """Compiles an organisation's pattern with RE2, whose matching time grows linearly with the text
    whatever the pattern (`(a+)+b` backtracks exponentially in Python's engine). Refuses patterns
    that are invalid, need what RE2 cannot bound (backreferences, look-around), are too large,
    or match empty text."""
    import re2

    if not isinstance(pattern, str) or not pattern or len(pattern) > RULE_MAX_LENGTH:
        raise ValueError(f"a pattern is 1 to {RULE_MAX_LENGTH} characters")
    options = re2.Options()
    options.max_mem = RULE_MAX_MEMORY
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"not a regular expression Steward can run in linear time ({reason}); "
                         "backreferences and look-around are not supported") from None
    if compiled.search("") is not None:
        raise ValueError("the pattern matches empty text, which would redact everything")
    return compiled
