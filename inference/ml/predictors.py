"""Predictors: the load / predict lifecycle of each kind of model (STYLE.md C5, KServe's shape).

A predictor is loaded once per worker process, from an unpacked artifact folder, onto a device,
and answers batches. `inspect_artifact` checks an upload before anything is stored: the files a
model needs are there, it loads, and it runs one example.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from inference.ml.schema import (
    InputError,
    check_schema,
    encode_rows,
    example_row,
    validate_tabular_inputs,
    validate_text_inputs,
)

logger = logging.getLogger("steward.inference")

TEXT_MAX_TOKENS = 256


@dataclass
class Prediction:
    label: str
    scores: dict[str, float]


@dataclass
class ArtifactInfo:
    task: str
    framework: str
    labels: list[str]
    input_schema: dict[str, Any] = field(default_factory=dict)
    example_output: dict[str, Any] = field(default_factory=dict)
    background_rows: int = 0  # tabular: rows of training data shipped for explanations


class Predictor(Protocol):
    task: ClassVar[str]
    framework: ClassVar[str]
    labels: list[str]
    device: str

    def load(self, folder: Path, device: str) -> None: ...
    def validate(self, inputs: list[Any]) -> list[Any]: ...
    def predict_proba(self, inputs: list[Any]) -> Any: ...
    def memory_bytes(self) -> int: ...


_PREDICTORS: dict[str, type[Predictor]] = {}


def register_predictor(task: str, cls: type[Predictor]) -> None:
    if task in _PREDICTORS:
        raise ValueError(f"predictor {task!r} already registered")
    _PREDICTORS[task] = cls


def predictor_class(task: str) -> type[Predictor]:
    try:
        return _PREDICTORS[task]
    except KeyError:
        raise InputError(f"no predictor for task {task!r}; known: {', '.join(sorted(_PREDICTORS))}") from None


def predictions_from_proba(labels: list[str], proba: Any) -> list[Prediction]:
    results = []
    for row in proba:
        scores = {label: round(float(p), 6) for label, p in zip(labels, row, strict=True)}
        results.append(Prediction(label=max(scores, key=scores.__getitem__), scores=scores))
    return results


class TextClassifier:
    """A Hugging Face sequence classifier (config, safetensors weights, tokenizer)."""

    task: ClassVar[str] = "text-classification"
    framework: ClassVar[str] = "transformers"
    REQUIRED: ClassVar[list[str]] = ["config.json", "model.safetensors"]

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.device = "cpu"
        self.half = False

    @classmethod
    def check_files(cls, folder: Path) -> None:
        missing = [name for name in cls.REQUIRED if not (folder / name).is_file()]
        if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()):
            missing.append("tokenizer.json or vocab.txt")
        if (folder / "pytorch_model.bin").exists() and not (folder / "model.safetensors").exists():
            raise InputError("pickled weights (pytorch_model.bin) are refused: upload model.safetensors")
        if missing:
            raise InputError(f"the model folder lacks {', '.join(missing)}")

    def load(self, folder: Path, device: str) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.check_files(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        )
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.device = device
        model.to(device).eval()
        self.model = model
        if device.startswith("cuda"):
            self.half = self._half_keeps_predictions(torch)

    def _half_keeps_predictions(self, torch: Any) -> bool:
        """Half precision only where it gives the same labels on a probe batch."""
        probe = ["a great, moving film", "dull and far too long", "it is a film", "not bad at all"] * 4
        full = self.predict_proba(probe).argmax(axis=1)
        self.model.half()
        self.half = True
        halved = self.predict_proba(probe).argmax(axis=1)
        if (full == halved).all():
            logger.info("serving %s in float16 on %s", type(self).__name__, self.device)
            return True
        self.model.float()
        return False

    def validate(self, inputs: list[Any]) -> list[str]:
        return validate_text_inputs(inputs)

    def encode(self, texts: list[str]) -> Any:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt"
        ).to(self.device)

    def logits(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(**batch).logits.float()

    def predict_proba(self, inputs: list[str]) -> Any:
        import torch

        logits = self.logits(self.encode(list(inputs)))
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def proba_from_ids(self, ids: Any) -> Any:
        """Probabilities for rows of token ids of one length (masked variants of one text): no padding."""
        import torch

        batch = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        logits = self.logits({"input_ids": batch, "attention_mask": torch.ones_like(batch)})
        return torch.softmax(logits.double(), dim=-1).cpu().numpy()

    def memory_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        predictor = cls()
        predictor.load(folder, "cpu")
        proba = predictor.predict_proba(["This is an example."])
        example = predictions_from_proba(predictor.labels, proba)[0]
        return ArtifactInfo(cls.task, cls.framework, predictor.labels, {}, example.__dict__)


class TabularClassifier:
    """A TorchScript module over encoded features, with its schema (model.pt + schema.json)."""

    task: ClassVar[str] = "tabular-classification"
    framework: ClassVar[str] = "torchscript"

    BACKGROUND_MAX_ROWS: ClassVar[int] = 1000

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.device = "cpu"
        self.schema: dict[str, Any] = {}
        self.background: list[dict[str, Any]] = []

    @staticmethod
    def check_files(folder: Path) -> dict[str, Any]:
        missing = [n for n in ("model.pt", "schema.json") if not (folder / n).is_file()]
        if missing:
            raise InputError(f"a tabular model needs model.pt (TorchScript) and schema.json; missing {', '.join(missing)}")
        try:
            return check_schema(json.loads((folder / "schema.json").read_text()))
        except json.JSONDecodeError as exc:
            raise InputError(f"schema.json is not valid JSON: {exc}") from None

    def load(self, folder: Path, device: str) -> None:
        import torch

        self.schema = self.check_files(folder)
        self.labels = list(self.schema["labels"])
        try:
            self.module = torch.jit.load(str(folder / "model.pt"), map_location=device).eval()
        except Exception as exc:  # torch raises many kinds for a file that is not TorchScript
            raise InputError(f"model.pt is not a loadable TorchScript module: {exc}") from None
        self.device = device
        self.background = self.read_background(folder)

    def read_background(self, folder: Path) -> list[dict[str, Any]]:
        """background.jsonl: rows of the training data that SHAP explanations compare against (optional)."""
        path = folder / "background.jsonl"
        if not path.is_file():
            return []
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"background.jsonl is not JSON lines: {exc}") from None
        if not 1 <= len(rows) <= self.BACKGROUND_MAX_ROWS:
            raise InputError(f"background.jsonl needs 1 to {self.BACKGROUND_MAX_ROWS} rows; it has {len(rows)}")
        try:
            return validate_tabular_inputs(self.schema, rows)
        except InputError as exc:
            raise InputError(f"background.jsonl does not fit schema.json: {exc}") from None

    def validate(self, inputs: list[Any]) -> list[dict[str, Any]]:
        return validate_tabular_inputs(self.schema, inputs)

    def predict_proba(self, inputs: list[dict[str, Any]]) -> Any:
        return self.predict_proba_encoded(encode_rows(self.schema, list(inputs)))

    def predict_proba_encoded(self, matrix: Any) -> Any:
        import torch

        with torch.inference_mode():
            logits = self.module(torch.as_tensor(matrix, device=self.device)).float()
            return torch.softmax(logits, dim=-1).cpu().numpy()

    def memory_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.module.parameters())

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        predictor = cls()
        predictor.load(folder, "cpu")
        try:
            proba = predictor.predict_proba([example_row(predictor.schema)])
        except Exception as exc:  # the module's own code failed on a valid row
            raise InputError(f"the model fails on an example row: {exc}") from None
        if proba.shape != (1, len(predictor.labels)):
            raise InputError(
                f"the model returns {proba.shape[1]} scores for {len(predictor.labels)} labels"
            )
        example = predictions_from_proba(predictor.labels, proba)[0]
        return ArtifactInfo(cls.task, cls.framework, predictor.labels, predictor.schema, example.__dict__,
                            background_rows=len(predictor.background))


register_predictor(TextClassifier.task, TextClassifier)  # type: ignore[arg-type]
register_predictor(TabularClassifier.task, TabularClassifier)  # type: ignore[arg-type]


def inspect_artifact(task: str, folder: Path) -> ArtifactInfo:
    """Checks an unpacked upload: required files, loads, runs one example (raises InputError)."""
    cls = predictor_class(task)
    try:
        return cls.inspect(folder)  # type: ignore[attr-defined,no-any-return]
    except InputError:
        raise
    except Exception as exc:  # a broken upload fails in many ways inside transformers/torch
        raise InputError(f"the model does not load: {type(exc).__name__}: {exc}"[:500]) from None
