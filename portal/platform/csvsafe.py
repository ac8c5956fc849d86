"""CSV that a spreadsheet opens without running anything in it.

A cell that begins with =, +, -, @, a tab or a carriage return is read as a formula by Excel,
LibreOffice and Google Sheets (`=cmd|'/c calc'!A1`, `@SUM(...)`), so every CSV that Steward
writes goes through `writer`: such a cell gets a leading apostrophe, as OWASP's CSV-injection
advice has it, unless it is a plain number ("-3.5" stays a number). NUL bytes, which some
readers take for the end of the file, are removed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import IO, Any

from django.utils.translation import gettext

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = value.replace("\0", "")
    if value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class _SafeWriter:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._inner.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class _SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    def _dict_to_list(self, rowdict: Any) -> Any:
        return [safe_cell(cell) for cell in super()._dict_to_list(rowdict)]  # type: ignore[misc]


def writer(out: IO[str], **kwargs: Any) -> _SafeWriter:
    return _SafeWriter(csv.writer(out, **kwargs))


def dict_writer(out: IO[str], fieldnames: list[str], **kwargs: Any) -> csv.DictWriter:  # type: ignore[type-arg]
    return _SafeDictWriter(out, fieldnames=fieldnames, **kwargs)


class Unreadable(ValueError):
    """The text is not a CSV file Steward reads; the message says why, for a person."""


def read_dicts(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV text, read whole, so that a malformed file fails here with a
    sentence (a field over the csv module's limit of 131,072 characters, a NUL byte) and not halfway
    through whoever iterates it."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        where = gettext("line %(line)s: ") % {"line": reader.line_num} if reader.line_num else ""
        if "field larger than field limit" in str(exc):
            raise Unreadable(gettext('The CSV file is not readable (%(where)sa field is longer than %(value)s characters).') % {"where": where, "value": f"{csv.field_size_limit():,}"}) from None
        raise Unreadable(gettext('The CSV file is not readable (%(where)s%(exc)s).') % {"where": where, "exc": exc}) from None
    return header, rows
