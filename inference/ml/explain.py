"""SHAP explanations of one input, with the model evaluations batched: plain Python, shap and torch.

Text: the attributions are over the model's own tokens, masked by shap's Text masker with the
model's tokenizer (masked tokens become the tokenizer's [MASK]). The masker hands token ids straight
to the model (output_type="token_ids"), so masked variants are never detokenized and tokenized
again, and each batch of variants is one forward pass; a variant the explainer asks for again is
not evaluated again (`_Counted`'s memo). Within the budget, a text short enough for every
coalition of its tokens (2^k <= max_evals) gets exact Shapley values by enumeration; a longer one
gets the Partition explainer's Owen values over the masker's token hierarchy (SHAP's method for
text). Attributions are shown at word level by summing a word's tokens.

Tabular: interventional Shapley values against a background sample of the training data that
ships with the model version (masked features take the background rows' values, averaged). With
up to EXACT_MAX_FEATURES features every coalition is evaluated (shap's Exact explainer): exact
values, no sampling, and cheap for an MLP. The model is a TorchScript module, so gradient-based
explainers (Deep, Gradient) cannot see inside it; a model-agnostic one is the fit. Beyond that
many features, the Permutation explainer with the budget (at least 2 x features + 1 coalitions).

Sampled explanations (Permutation, Partition) are seeded per request (`explanation_seed`), so the
same prediction, row, budget and version give the same values; the seed is stored with them.

Every explanation returns the base value, the model output f(x) and the residual
|base + sum(attributions) - f(x)| per label, all computed in float64.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from inference.ml.words import _

EXACT_MAX_FEATURES = 12
MIN_EVALS, MAX_EVALS = 16, 5000
WORD = re.compile(r"\S+")
# shap's explainers draw from numpy's global generator (Permutation's orders, Partition's ties):
# an explanation seeds it and runs alone in its process, so the same request gives the same values
_SEEDED = threading.Lock()


def budget_floor(task: str, features: int) -> int:
    """The fewest evaluations an explanation of a model with `features` inputs can run with: the
    Permutation explainer (tabular, beyond EXACT_MAX_FEATURES) walks one permutation forward and
    back, 2 x features + 1 coalitions; otherwise MIN_EVALS."""
    if task == "tabular-classification" and features > EXACT_MAX_FEATURES:
        return max(MIN_EVALS, 2 * features + 1)
    return MIN_EVALS


def explanation_seed(*parts: Any) -> int:
    """A seed fixed by what is explained (e.g. prediction, row, budget): asking again gives the same values."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass
class Explained:
    method: str
    max_evals: int
    evaluations: int
    labels: list[str]
    label: str  # the explained label: the predicted one
    features: list[str]  # tokens or feature names
    values: list[list[float]]  # features x labels
    base_values: list[float]
    output: list[float]
    residual: float
    seconds: float
    words: list[dict[str, Any]] = field(default_factory=list)  # text: [{"word", "value"}] for `label`
    feature_values: list[Any] = field(default_factory=list)  # tabular: the input's values
    seed: int = 0  # numpy's seed for the sampling explainers: the same seed gives the same values
    model_rows: int = 0  # rows the model ran: a tabular coalition runs once per background row

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class _Counted:
    """Wraps the model function: counts evaluated rows, returns float64.

    With `memo`, each distinct row is evaluated once per explanation (`reset` starts the next one):
    the Partition explainer asks for the same coalition again as it walks down the token tree, and
    on SST-2 sentences at max_evals 500 a third of its rows are repeats. A repeated row gets the
    value its first evaluation gave, so the attributions are those of the unmemoised run (to the
    float rounding that batch composition makes) and every coalition has one value, as Shapley
    values assume. `rows` counts the rows the model ran.
    """

    def __init__(self, fn: Any, *, memo: bool = False) -> None:
        self.fn, self.rows = fn, 0
        self.memo: dict[bytes, np.ndarray] | None = {} if memo else None

    def reset(self) -> None:
        self.rows = 0
        if self.memo is not None:
            self.memo.clear()

    def __call__(self, batch: Any) -> Any:
        batch = np.asarray(batch)
        if self.memo is None:
            self.rows += len(batch)
            return np.asarray(self.fn(batch), dtype=np.float64)
        keys = [row.tobytes() for row in batch]  # rows of one batch share a length and a dtype
        first: dict[bytes, int] = {}  # each distinct row's first place in the batch
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        missing = [key for key in first if key not in self.memo]
        if missing:
            computed = np.asarray(self.fn(batch[[first[key] for key in missing]]), dtype=np.float64)
            self.rows += len(missing)
            self.memo.update(zip(missing, computed, strict=True))
        return np.stack([self.memo[key] for key in keys])


def _residual(base: np.ndarray, values: np.ndarray, output: np.ndarray) -> float:
    return float(np.max(np.abs(base + values.sum(axis=0) - output)))


def shapley_exact(value_of: Any, players: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley values (players x outputs) from v(S) over every subset of `players` (batched).

    Returns the values and v itself (v[0] is the empty coalition, v[-1] the full one).
    """
    k = len(players)
    masks = np.ones((2**k, n), dtype=bool)
    for j, player in enumerate(players):
        masks[:, player] = (np.arange(2**k) >> j) & 1 == 1
    v = value_of(masks)  # 2^k x outputs
    weights = [math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)]
    sizes = np.array([bin(b).count("1") for b in range(2**k)])
    phi = np.zeros((k, v.shape[1]))
    for j in range(k):
        without = np.flatnonzero(((np.arange(2**k) >> j) & 1) == 0)
        w = np.array([weights[s] for s in sizes[without]])[:, None]
        phi[j] = (w * (v[without | (1 << j)] - v[without])).sum(axis=0)
    return phi, v


class TextExplainer:
    """Explains a text classifier (anything with `tokenizer`, `labels` and `proba_from_ids`)."""

    def __init__(self, predictor: Any, *, mask_token: int | None = None) -> None:
        """`mask_token`: the token id a masked token becomes, one for one (a model without a [MASK] token,
        as a generative one, gets one of its ordinary tokens); None: the tokenizer's [MASK]."""
        import shap

        self.predictor = predictor
        if mask_token is None:
            self.masker = shap.maskers.Text(predictor.tokenizer, output_type="token_ids")
        else:  # one for one: every variant keeps the input's length (and its positions)
            self.masker = shap.maskers.Text(predictor.tokenizer, mask_token=mask_token, collapse_mask_token=False,
                                            output_type="token_ids")
        self.model = _Counted(predictor.proba_from_ids, memo=True)
        self.partition = shap.Explainer(self.model, self.masker, output_names=predictor.labels, algorithm="partition")

    def _masked_ids(self, masks: np.ndarray, text: str) -> np.ndarray:
        return np.stack([np.asarray(self.masker(m, text)[0]).reshape(-1) for m in masks])

    def explain(self, text: str, *, max_evals: int = 500, batch_size: int = 64, method: str = "auto",
                seed: int = 0) -> Explained:
        with _SEEDED:
            np.random.seed(seed)
            return self._explain(text, max_evals=max_evals, batch_size=batch_size, method=method, seed=seed)

    def _explain(self, text: str, *, max_evals: int, batch_size: int, method: str, seed: int) -> Explained:
        began = time.perf_counter()
        self.model.reset()
        length = len(self.masker.tokenizer(text)["input_ids"])
        full, empty = (np.asarray(self.masker(np.full(length, on), text)[0]).reshape(-1) for on in (True, False))
        n = len(full)
        keep = self.masker.keep_prefix, self.masker.keep_suffix
        players = list(range(keep[0], n - keep[1]))
        # f(x) and the empty coalition in one forward pass: both explainers ask for both again (the
        # memo answers), and a one-row pass costs nearly what a two-row one does
        output = self.model(np.stack([full, empty]) if len(empty) == n else full[None])[0]
        if method == "auto":
            method = "exact" if 2 ** len(players) <= max_evals else "partition"
        if method == "exact":
            def value_of(masks: np.ndarray) -> np.ndarray:
                ids = self._masked_ids(masks, text)
                return np.concatenate([self.model(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)])

            values = np.zeros((n, len(output)))
            values[players], v = shapley_exact(value_of, players, n)
            base, output = v[0], v[-1]  # the same evaluations as the values: additive to rounding
            tokens = [str(t) for t in self.masker.data_transform(text)[0]]
        else:
            result = self.partition([text], max_evals=max_evals, batch_size=batch_size, silent=True)[0]
            values = np.asarray(result.values, dtype=np.float64)
            base = np.asarray(result.base_values, dtype=np.float64)
            tokens = [str(t) for t in result.data]
        labels = list(self.predictor.labels)
        label = int(np.argmax(output))
        return Explained(
            method=method, max_evals=max_evals, evaluations=self.model.rows, labels=labels, label=labels[label],
            features=tokens, values=values.tolist(), base_values=base.tolist(), output=output.tolist(),
            residual=_residual(base, values, output), seconds=time.perf_counter() - began,
            words=self._words(text, values[:, label]), seed=seed, model_rows=self.model.rows,
        )

    def _words(self, text: str, token_values: np.ndarray) -> list[dict[str, Any]]:
        """Token attributions summed per word (whitespace-separated), for people."""
        offsets = self.masker.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        spans = [(m.start(), m.end(), m.group()) for m in WORD.finditer(text)]
        sums = [0.0] * len(spans)
        for (start, end), value in zip(offsets, token_values, strict=False):
            while start < end and text[start].isspace():
                start += 1  # a byte-level BPE token carries the space before its word ("Ġcapital")
            if end <= start:
                continue  # special tokens
            for i, (first, last, _word) in enumerate(spans):
                if first <= start < last:
                    sums[i] += float(value)
                    break
        return [{"word": word, "value": total} for (_, _, word), total in zip(spans, sums, strict=True)]


class TabularExplainer:
    """Explains a tabular classifier over its raw features against a background sample."""

    def __init__(self, predictor: Any, background: list[dict[str, Any]], *, seed: int = 0) -> None:
        import shap

        self.predictor = predictor
        self.schema = predictor.schema
        self.features = [f["name"] for f in self.schema["features"]]
        self.background = self.codes(background)
        self.masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
        self.model = _Counted(self.proba_from_codes)
        self.seed = seed
        if self.method == "exact":
            self.explainer = shap.explainers.Exact(self.model, self.masker)
        else:
            self.explainer = shap.explainers.Permutation(self.model, self.masker, seed=seed)

    def codes(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Rows as numbers: a number feature as itself, a category as its index in the schema."""
        matrix = np.zeros((len(rows), len(self.features)))
        for j, feature in enumerate(self.schema["features"]):
            if feature["type"] == "number":
                matrix[:, j] = [row[feature["name"]] for row in rows]
            else:
                index = {v: i for i, v in enumerate(feature["values"])}
                matrix[:, j] = [index[row[feature["name"]]] for row in rows]
        return matrix

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """The model's input from codes, vectorized (the same encoding as schema.encode_rows)."""
        columns = []
        for j, feature in enumerate(self.schema["features"]):
            if feature["type"] == "number":
                columns.append(((codes[:, j] - feature["mean"]) / feature["std"])[:, None])
            else:
                columns.append(np.eye(len(feature["values"]))[codes[:, j].astype(int)])
        return np.concatenate(columns, axis=1).astype(np.float32)

    def proba_from_codes(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.predictor.predict_proba_encoded(self.encode(codes)))

    @property
    def method(self) -> str:
        return "exact" if len(self.features) <= EXACT_MAX_FEATURES else "permutation"

    def explain(self, row: dict[str, Any], *, max_evals: int = 500, seed: int = 0) -> Explained:
        """`max_evals` counts coalitions (each run against every background row); exact values
        (up to EXACT_MAX_FEATURES features) evaluate all 2^features of them, whatever the budget."""
        floor = budget_floor("tabular-classification", len(self.features))
        if self.method != "exact" and max_evals < floor:
            raise ValueError(f"a model of {len(self.features)} features needs a budget of at least {floor}")
        with _SEEDED:
            np.random.seed(seed)
            began = time.perf_counter()
            self.model.rows = 0
            x = self.codes([row])
            output = self.model(x)[0]
            if self.method == "exact":
                result = self.explainer(x, silent=True)[0]
                budget = 2 ** len(self.features)
            else:
                result = self.explainer(x, max_evals=max_evals, silent=True)[0]
                budget = max_evals
            rows = self.model.rows
        values = np.asarray(result.values, dtype=np.float64)
        base = np.asarray(result.base_values, dtype=np.float64)
        labels = list(self.predictor.labels)
        # what the budget counts: coalitions (shap's Permutation walks whole permutations of 2n + 1
        # each); the model's rows are more, each coalition run against the background (`model_rows`)
        walk = 2 * len(self.features) + 1
        coalitions = budget if self.method == "exact" else (max_evals // walk) * walk
        return Explained(
            method=self.method, max_evals=budget, evaluations=coalitions, labels=labels,
            label=labels[int(np.argmax(output))], features=self.features, values=values.tolist(),
            base_values=base.tolist(), output=output.tolist(), residual=_residual(base, values, output),
            seconds=time.perf_counter() - began, feature_values=[row[f] for f in self.features], seed=seed,
            model_rows=rows,
        )


def summary(explained: Explained, *, top: int = 3) -> str:
    """'pushed towards NEGATIVE: 'dull', 'boring'; towards POSITIVE: 'acting'' (binary), or per label."""
    label = explained.labels.index(explained.label)
    if explained.words:
        items = [(w["word"].strip(".,;:!?\"'()"), w["value"]) for w in explained.words]
    else:
        items = [(f"{name} = {value}", v[label]) for name, value, v in
                 zip(explained.features, explained.feature_values, explained.values, strict=True)]
    items = [(name, value) for name, value in items if name and abs(value) > 1e-9]
    up = list(dict.fromkeys(n for n, v in sorted(items, key=lambda i: -i[1]) if v > 0))[:top]
    down = list(dict.fromkeys(n for n, v in sorted(items, key=lambda i: i[1]) if v < 0))[:top]
    others = [x for x in explained.labels if x != explained.label]
    against = others[0] if len(others) == 1 else _("other than %(label)s") % {"label": explained.label}
    parts = []
    if up:
        parts.append(_("pushed towards %(label)s: %(words)s") % {
            "label": explained.label, "words": ", ".join(f"'{n}'" for n in up)})
    if down:
        parts.append(_("towards %(label)s: %(words)s") % {"label": against, "words": ", ".join(f"'{n}'" for n in down)})
    return _("; ").join(parts) or _("no input feature moved the score")


def summary_of(result: dict[str, Any]) -> str:
    """The summary of a stored explanation, in the reader's language (the stored one is the worker's)."""
    names = {f.name for f in fields(Explained)}
    return summary(Explained(**{k: v for k, v in result.items() if k in names}))


def _word_key(word: str) -> str:
    return word.strip(".,;:!?\"'()[]{}-").lower()


def global_ranking(explained: list[Explained], *, top: int = 50) -> dict[str, Any]:
    """Mean |SHAP| over a sample: per feature (tabular) or per word (text), towards each row's predicted label.

    A word absent from a row counts 0 for that row, so a word's figure is its mean |attribution| over the
    whole sample (what shap's global bar plot shows); `occurrences` says in how many rows it appears and
    `mean_signed` which way it pushes on average (positive: towards the label the model predicted).
    """
    if not explained:
        raise ValueError("no explanations to aggregate")
    n = len(explained)
    totals: dict[str, list[float]] = {}  # name -> [sum |v|, sum v, rows seen]
    order: list[str] = []
    for item in explained:
        label = item.labels.index(item.label)
        if item.words:
            pairs = [(_word_key(w["word"]), float(w["value"])) for w in item.words]
        else:
            pairs = [(name, float(v[label])) for name, v in zip(item.features, item.values, strict=True)]
        seen: set[str] = set()
        for name, value in pairs:
            if not name:
                continue
            if name not in totals:
                totals[name] = [0.0, 0.0, 0.0]
                order.append(name)
            totals[name][0] += abs(value)
            totals[name][1] += value
            if name not in seen:
                totals[name][2] += 1
                seen.add(name)
    ranked = sorted(order, key=lambda name: -totals[name][0])
    kind = "word" if explained[0].words else "feature"
    predicted: dict[str, int] = {}
    for item in explained:
        predicted[item.label] = predicted.get(item.label, 0) + 1
    return {
        "kind": kind,
        "rows": n,
        "methods": sorted({item.method for item in explained}),
        "evaluations": sum(item.evaluations for item in explained),
        "max_residual": max(item.residual for item in explained),
        "predicted": predicted,
        "distinct": len(order),
        "ranking": [
            {"name": name, "mean_abs": totals[name][0] / n, "mean_signed": totals[name][1] / n,
             "occurrences": int(totals[name][2])}
            for name in ranked[:top]
        ],
    }
