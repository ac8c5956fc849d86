"""Input schemas of tabular models: validation of feature dicts and their encoding to vectors."""

from __future__ import annotations

import math
from typing import Any

from inference.ml.words import _


class InputError(ValueError):
    """An input does not fit the model; `errors` maps a row (and field) to a message."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def check_schema(schema: Any) -> dict[str, Any]:
    """Validates a tabular schema document; returns it normalised."""
    if not isinstance(schema, dict) or not isinstance(schema.get("features"), list) or not schema["features"]:
        raise InputError(_("the schema needs a non-empty 'features' list"))
    seen = set()
    for feature in schema["features"]:
        name = feature.get("name") if isinstance(feature, dict) else None
        if not isinstance(name, str) or not name or name in seen:
            raise InputError(_('every feature needs a unique name (got %(name)s)') % {"name": f"{name!r}"})
        seen.add(name)
        kind = feature.get("type")
        if kind == "number":
            for key in ("mean", "std"):
                if not isinstance(feature.get(key), (int, float)):
                    raise InputError(_("number feature %(name)s needs '%(key)s' for its encoding") % {"name": f"{name!r}", "key": key})
            if feature["std"] <= 0:
                raise InputError(_("number feature %(name)s needs a positive 'std'") % {"name": f"{name!r}"})
        elif kind == "category":
            values = feature.get("values")
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise InputError(_("category feature %(name)s needs a list of string 'values'") % {"name": f"{name!r}"})
        else:
            raise InputError(_("feature %(name)s has type %(kind)s; use 'number' or 'category'") % {"name": f"{name!r}", "kind": f"{kind!r}"})
    labels = schema.get("labels")
    if not isinstance(labels, list) or len(labels) < 2:
        raise InputError(_("the schema needs 'labels', two or more"))
    return schema


def encoded_width(schema: dict[str, Any]) -> int:
    return sum(1 if f["type"] == "number" else len(f["values"]) for f in schema["features"])


def validate_row(schema: dict[str, Any], row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InputError(_('expected an object of features'), {"_": "not an object"})
    names = {f["name"] for f in schema["features"]}
    errors: dict[str, str] = {}
    for unknown in sorted(set(row) - names):
        errors[unknown] = "unknown feature"
    clean: dict[str, Any] = {}
    for feature in schema["features"]:
        name = feature["name"]
        if name not in row:
            errors[name] = "missing"
            continue
        value = row[name]
        if feature["type"] == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                errors[name] = "must be a finite number"
                continue
            low, high = feature.get("min"), feature.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                errors[name] = f"must be between {low} and {high}"
                continue
            clean[name] = float(value)
        else:
            if value not in feature["values"]:
                shown = ", ".join(feature["values"][:8]) + ("…" if len(feature["values"]) > 8 else "")
                errors[name] = f"must be one of: {shown}"
                continue
            clean[name] = value
    if errors:
        raise InputError(_("The features do not fit the model's schema"), errors)
    return clean


def encode_rows(schema: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    import numpy as np

    matrix = np.zeros((len(rows), encoded_width(schema)), dtype=np.float32)
    for r, row in enumerate(rows):
        col = 0
        for feature in schema["features"]:
            if feature["type"] == "number":
                matrix[r, col] = (row[feature["name"]] - feature["mean"]) / feature["std"]
                col += 1
            else:
                matrix[r, col + feature["values"].index(row[feature["name"]])] = 1.0
                col += len(feature["values"])
    return matrix


def example_row(schema: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for feature in schema["features"]:
        if feature["type"] == "number":
            value = feature["mean"]
            low, high = feature.get("min"), feature.get("max")
            value = max(low, value) if low is not None else value
            value = min(high, value) if high is not None else value
            row[feature["name"]] = value
        else:
            row[feature["name"]] = feature["values"][0]
    return row


TEXT_MAX_CHARS = 5000


def validate_text_inputs(inputs: list[Any]) -> list[str]:
    """Texts as strings, or as {"text": ...} objects; each non-empty and not too long."""
    errors: dict[str, str] = {}
    texts: list[str] = []
    for i, item in enumerate(inputs):
        text = item.get("text") if isinstance(item, dict) and set(item) == {"text"} else item
        if not isinstance(text, str) or not text.strip():
            errors[str(i)] = 'expected a non-empty text (a string, or {"text": ...})'
        elif len(text) > TEXT_MAX_CHARS:
            errors[str(i)] = f"longer than {TEXT_MAX_CHARS} characters"
        else:
            texts.append(text)
    if errors:
        raise InputError(_('Some inputs are not texts this model can read'), errors)
    return texts


def validate_tabular_inputs(schema: dict[str, Any], inputs: list[Any]) -> list[dict[str, Any]]:
    rows, errors = [], {}
    for i, item in enumerate(inputs):
        try:
            rows.append(validate_row(schema, item))
        except InputError as exc:
            errors[str(i)] = exc.errors
    if errors:
        raise InputError(_("Some inputs do not fit the model's input schema"), errors)
    return rows


def rows_from_records(schema: dict[str, Any], records: list[dict[str, Any]], *,
                      first_line: int = 2) -> list[dict[str, Any]]:
    """CSV records (text cells, by column) as rows of the schema's features: numbers parsed,
    categories as written, both without surrounding blanks.

    Raises:
        InputError: a number cell that is not a number (its line, the feature and the value said).
    """
    kinds = {f["name"]: f["type"] for f in schema.get("features", [])}
    rows: list[dict[str, Any]] = []
    for line, record in enumerate(records, start=first_line):
        row: dict[str, Any] = {}
        for feature, kind in kinds.items():
            value = (record.get(feature) or "").strip()
            if kind == "number":
                try:
                    row[feature] = float(value)
                except ValueError:
                    raise InputError(_('Line %(line)s: %(feature)s is not a number (%(value)s).') % {"line": line, "feature": feature, "value": f"{value!r}"}) from None
            else:
                row[feature] = value
        rows.append(row)
    return rows


def validate_inputs(task: str, schema: dict[str, Any], inputs: list[Any]) -> list[Any]:
    """Checks inputs without loading the model (the web process runs this before queueing)."""
    if task in ("text-classification", "text-embedding"):
        return validate_text_inputs(inputs)
    return validate_tabular_inputs(schema, inputs)


def typical_row(schema: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A typical input for people to start from: each number's median and each category's most
    frequent value among `rows` (the training sample a version ships), else `example_row`'s."""
    import statistics
    from collections import Counter

    if not rows:
        return example_row(schema)
    typical: dict[str, Any] = {}
    for feature in schema["features"]:
        values = [row[feature["name"]] for row in rows if feature["name"] in row]
        if feature["type"] == "number":
            typical[feature["name"]] = statistics.median(values) if values else example_row(schema)[feature["name"]]
        else:
            counts = Counter(values)
            typical[feature["name"]] = max(feature["values"], key=lambda v: (counts[v], -feature["values"].index(v)))
    return typical
