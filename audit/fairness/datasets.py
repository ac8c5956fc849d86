"""Evaluation data for bias reports: uploads checked before anything is stored, and the shipped demo sets.

A checked dataset is a plain dict (JSON-able) that the worker reads back: for tabular reports the
model's input rows, the true outcomes and the sensitive columns; for text reports the templates,
their labels and the identity terms.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext, gettext_lazy

from audit.fairness.exceptions import DatasetTooLarge, InvalidDataset
from inference.ml.schema import InputError, rows_from_records, validate_inputs
from portal.platform import csvsafe

DATA = Path(settings.BASE_DIR) / "data"
SLOT = "{identity}"
DEMO_DATASETS = {  # what the report form offers (the reports name their data themselves)
    "demo-adult": gettext_lazy("UCI Adult test set (16,281 rows; label income, sensitive sex and race)"),
    "demo-identity": gettext_lazy("Identity madlibs: 48 templates x 50 identity terms (Dixon et al. 2018)"),
    "demo-bold": gettext_lazy("BOLD prompts of one domain, up to 40 per group (Dhamala et al. 2021)"),
}


@dataclass
class Checked:
    name: str
    sha256: str
    rows: int
    content: dict[str, Any]
    params: dict[str, Any]


def read_limited(upload: Any) -> bytes:
    raw: bytes = upload.read(settings.BIAS_MAX_BYTES + 1)
    if len(raw) > settings.BIAS_MAX_BYTES:
        raise DatasetTooLarge(gettext('The file is larger than the limit of %(value)s MiB.') % {"value": settings.BIAS_MAX_BYTES // 2**20})
    return raw


def _csv_records(raw: bytes) -> tuple[list[str], list[dict[str, str]]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidDataset(gettext('The file is not UTF-8 text.')) from None
    try:
        fieldnames, rows = csvsafe.read_dicts(text)
    except csvsafe.Unreadable as exc:
        raise InvalidDataset(str(exc)) from None
    header = [h.strip() for h in fieldnames]
    records = [{(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in r.items()} for r in rows]
    if not header:
        raise InvalidDataset(gettext('The CSV file has no header row.'))
    if not records:
        raise InvalidDataset(gettext('The CSV file holds no rows.'))
    return header, records


def _binary(values: list[str], allowed: list[str], what: str) -> None:
    distinct = sorted(set(values))
    if len(distinct) > 2:
        raise InvalidDataset(
            gettext('%(what)s must be binary; it holds %(count)s values: %(value)s.') % {"what": what, "count": len(distinct), "value": ', '.join(distinct[:6])}
        )
    unknown = [v for v in distinct if v not in allowed]
    if unknown:
        raise InvalidDataset(
            gettext('%(what)s holds %(value)s, not one of %(value2)s (binary labels are needed).') % {"what": what, "value": ', '.join(map(repr, unknown)), "value2": ', '.join(map(repr, allowed))}
        )


def tabular_check(
    raw: bytes, *, name: str, schema: dict[str, Any], labels: list[str], label_column: str,
    sensitive_columns: list[str], favourable_label: str,
) -> Checked:
    """Checks an evaluation CSV against the model: label, sensitive and feature columns, binary labels."""
    if len(labels) != 2:
        raise InvalidDataset(gettext('Group metrics need a binary classifier; this model has %(count)s labels.') % {"count": len(labels)})
    if favourable_label not in labels:
        raise InvalidDataset(gettext("The favourable label %(favourable_label)s is not one of the model's labels %(labels)s.") % {"favourable_label": f"{favourable_label!r}", "labels": labels})
    if not sensitive_columns:
        raise InvalidDataset(gettext('Name at least one sensitive column (for example sex, race).'))
    header, records = _csv_records(raw)
    if len(records) > settings.BIAS_MAX_ROWS:
        raise DatasetTooLarge(gettext('A bias report takes at most %(bias_max_rows)s rows; this file has %(count)s.') % {"bias_max_rows": settings.BIAS_MAX_ROWS, "count": len(records)})
    features = [f["name"] for f in schema.get("features", [])]
    missing = [c for c in [label_column, *sensitive_columns, *features] if c not in header]
    if missing:
        raise InvalidDataset(
            gettext('The CSV file lacks the column(s) %(value)s.') % {"value": ', '.join(dict.fromkeys(missing))},
            details={"missing": list(dict.fromkeys(missing)), "columns": header},
        )
    y = [r[label_column].rstrip(".") for r in records]
    _binary(y, labels, f"The label column {label_column!r}")
    for column in sensitive_columns:
        empty = [i + 2 for i, r in enumerate(records) if not r[column]]
        if empty:
            raise InvalidDataset(
                gettext('The sensitive column %(column)s is empty in %(count)s row(s) (first at line %(value)s); every row needs a group.') % {"column": f"{column!r}", "count": len(empty), "value": empty[0]}
            )
    try:
        rows = rows_from_records(schema, records)
    except InputError as exc:
        raise InvalidDataset(str(exc)) from None
    try:
        clean = validate_inputs("tabular-classification", schema, rows)
    except InputError as exc:
        first = dict(list(exc.errors.items())[:10])
        raise InvalidDataset(gettext("Rows do not fit the model's schema: %(exc)s.") % {"exc": exc}, details={"rows": first}) from None
    return Checked(
        name=name[:200], sha256=hashlib.sha256(raw).hexdigest(), rows=len(clean),
        content={"rows": clean, "y_true": [v == favourable_label for v in y],
                 "sensitive": {c: [r[c] for r in records] for c in sensitive_columns}},
        params={"label_column": label_column, "sensitive_columns": sensitive_columns,
                "favourable_label": favourable_label},
    )


def text_check(raw: bytes, *, name: str, terms: list[str], labels: list[str], score_label: str) -> Checked:
    """Checks templates (a `template` column with {identity}, optional 0/1 `label`) and identity terms."""
    if score_label not in labels:
        raise InvalidDataset(gettext("The score label %(score_label)s is not one of the model's labels %(labels)s.") % {"score_label": f"{score_label!r}", "labels": labels})
    terms = [t.strip() for t in terms if t.strip()]
    if len(terms) < 2:
        raise InvalidDataset(gettext('Give at least two identity terms to compare.'))
    if len(set(terms)) != len(terms) or any(len(t) > 60 for t in terms):
        raise InvalidDataset(gettext('Identity terms must be distinct and at most 60 characters each.'))
    header, records = _csv_records(raw)
    if "template" not in header:
        raise InvalidDataset(gettext("The templates file needs a 'template' column."), details={"columns": header})
    templates = [r["template"] for r in records]
    without = [i + 2 for i, t in enumerate(templates) if SLOT not in t]
    if without:
        raise InvalidDataset(gettext('Every template needs the slot %(slot)s; line %(value)s has none.') % {"slot": SLOT, "value": without[0]})
    sentences = len(templates) * len(terms)
    if sentences > settings.BIAS_MAX_TEXT_ROWS:
        raise DatasetTooLarge(
            gettext('%(count)s templates x %(count2)s terms = %(sentences)s sentences; the limit is %(bias_max_text_rows)s.') % {"count": len(templates), "count2": len(terms), "sentences": sentences, "bias_max_text_rows": settings.BIAS_MAX_TEXT_ROWS}
        )
    template_labels: list[bool] | None = None
    if "label" in header:
        values = [r["label"] for r in records]
        _binary(values, ["0", "1"], "The template label column")
        template_labels = [v == "1" for v in values]
    digest = hashlib.sha256(raw)
    digest.update(b"\n# terms\n" + "\n".join(terms).encode())
    return Checked(
        name=name[:200], sha256=digest.hexdigest(), rows=sentences,
        content={"templates": templates, "labels": template_labels, "terms": terms},
        params={"score_label": score_label, "terms": len(terms), "templates": len(templates),
                "labelled": template_labels is not None},
    )


def demo_adult(*, schema: dict[str, Any], labels: list[str]) -> Checked:
    """The Adult test set as an evaluation CSV (for the demo `income` model)."""
    from inference.ml.training import ADULT_COLUMNS, read_adult

    path = DATA / "adult" / "adult.test"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ADULT_COLUMNS)
    writer.writeheader()
    writer.writerows(read_adult(path))
    checked = tabular_check(
        out.getvalue().encode(), name="UCI Adult test set", schema=schema, labels=labels, label_column="income",
        sensitive_columns=["sex", "race"], favourable_label=">50K",
    )
    checked.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()  # the shipped file's, as its source lists it
    return checked


def demo_identity(*, labels: list[str], score_label: str) -> Checked:
    folder = DATA / "identity_bias"
    terms = (folder / "terms.txt").read_text(encoding="utf-8").splitlines()
    checked = text_check((folder / "templates.csv").read_bytes(), name="Identity madlibs (48 x 50)", terms=terms,
                         labels=labels, score_label=score_label)
    return checked
