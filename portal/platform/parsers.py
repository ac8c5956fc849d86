"""The API's JSON parser: what PostgreSQL cannot store and Python cannot walk is refused as 400.

Python's json module accepts "\\u0000" (which a PostgreSQL text or jsonb value cannot hold) and
lone surrogates such as "\\ud800" (which no UTF-8 encoder can write), and recurses once per level
of nesting (5,000 levels raised RecursionError). Each made a 500 further in; here they are a
ParseError that says what is wrong, before any view sees the body.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


def check_json_value(value: Any, *, where: str = "the request body") -> None:
    """Raises ValueError with a sentence when `value` holds text that cannot be stored, or nests too deep."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where} nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key, where)
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{where} holds a NUL character (\\u0000), which text may not contain")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} holds a lone surrogate (such as \\ud800), which is not valid Unicode text") from None


def loads_checked(text: str | bytes, *, where: str = "the request body") -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{where} nests deeper than {MAX_DEPTH} levels") from None
    check_json_value(value, where=where)
    return value


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            text = raw.decode((parser_context or {}).get("encoding") or "utf-8")
        except UnicodeDecodeError:
            raise ParseError(gettext('The body is not UTF-8 text.')) from None
        try:
            return loads_checked(text)
        except json.JSONDecodeError as exc:
            raise ParseError(gettext('JSON parse error - %(exc)s') % {"exc": exc}) from None
        except ValueError as exc:
            raise ParseError(gettext('%(upper)s%(value)s.') % {"upper": str(exc)[:1].upper(), "value": str(exc)[1:]}) from None
