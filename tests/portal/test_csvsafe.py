"""Every CSV Steward writes is safe to open in a spreadsheet (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from portal.platform.csvsafe import FORMULA_STARTS, dict_writer, safe_cell, writer


def test_formulas_are_quoted_and_nul_bytes_dropped() -> None:
    assert safe_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert safe_cell("a\0b") == "ab" and safe_cell("\0=1") == "'=1"
    assert safe_cell("-1.5e3") == "-1.5e3" and safe_cell("+7") == "+7" and safe_cell(-2) == -2
    out = io.StringIO()
    dict_writer(out, ["a"]).writerow({"a": "@SUM(1)"})
    assert out.getvalue().strip() == "'@SUM(1)"


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_no_cell_read_back_starts_a_formula(cells: list[str]) -> None:
    out = io.StringIO()
    writer(out).writerow(cells)
    (row,) = list(csv.reader(io.StringIO(out.getvalue())))
    for cell in row:
        assert "\0" not in cell
        assert not cell.startswith(FORMULA_STARTS) or safe_cell(cell) == cell  # only plain numbers stay
