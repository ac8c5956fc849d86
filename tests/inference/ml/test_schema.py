from __future__ import annotations

import numpy as np
import pytest

from inference.ml.schema import InputError, check_schema, encode_rows, validate_inputs, validate_row
from tests.inference.factories import TINY_SCHEMA


class SchemaTests:
    def test_valid_row_encodes(self) -> None:
        row = validate_row(TINY_SCHEMA, {"income": 70, "region": "south"})
        assert np.allclose(encode_rows(TINY_SCHEMA, [row]), [[1.0, 0.0, 1.0]])

    @pytest.mark.parametrize(
        ("row", "field", "message"),
        [
            ({"income": "lots", "region": "north"}, "income", "finite number"),
            ({"income": 5000, "region": "north"}, "income", "between"),
            ({"income": 10, "region": "east"}, "region", "one of"),
            ({"region": "north"}, "income", "missing"),
            ({"income": 10, "region": "north", "age": 3}, "age", "unknown"),
            ({"income": True, "region": "north"}, "income", "finite number"),
        ],
    )
    def test_invalid_rows_name_the_field(self, row, field, message) -> None:
        with pytest.raises(InputError) as caught:
            validate_row(TINY_SCHEMA, row)
        assert message in caught.value.errors[field]

    def test_text_inputs(self) -> None:
        assert validate_inputs("text-classification", {}, ["hi", {"text": "there"}]) == ["hi", "there"]
        with pytest.raises(InputError) as caught:
            validate_inputs("text-classification", {}, ["ok", "", 3, "x" * 6000])
        assert set(caught.value.errors) == {"1", "2", "3"}

    @pytest.mark.parametrize(
        "schema",
        [{}, {"features": []}, {"features": [{"name": "a", "type": "blob"}], "labels": ["x", "y"]},
         {"features": [{"name": "a", "type": "number", "mean": 0, "std": 0}], "labels": ["x", "y"]},
         {"features": [{"name": "a", "type": "category", "values": ["p"]}], "labels": ["x"]}],
    )
    def test_bad_schemas_are_refused(self, schema) -> None:
        with pytest.raises(InputError):
            check_schema(schema)


def test_a_typical_row_takes_each_numbers_median_and_each_categorys_most_frequent_value() -> None:
    from inference.ml.schema import typical_row

    schema = {"features": [{"name": "age", "type": "number", "mean": 40.0, "std": 10.0},
                           {"name": "sex", "type": "category", "values": ["Female", "Male"]},
                           {"name": "relationship", "type": "category", "values": ["?", "Husband", "Wife"]}],
              "labels": ["<=50K", ">50K"]}
    rows = [{"age": a, "sex": s, "relationship": r} for a, s, r in
            [(25, "Male", "Husband"), (37, "Male", "Husband"), (52, "Female", "Wife"), (61, "Male", "Husband")]]
    assert typical_row(schema, rows) == {"age": 44.5, "sex": "Male", "relationship": "Husband"}
    assert typical_row(schema, []) == {"age": 40.0, "sex": "Female", "relationship": "?"}  # no sample shipped
