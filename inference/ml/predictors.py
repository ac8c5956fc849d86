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

from inference.ml.loading import BUILDING
from inference.ml.schema import (
    InputError,
    check_schema,
    encode_rows,
    example_row,
    typical_row,
    validate_tabular_inputs,
    validate_text_inputs,
)
from inference.ml.words import _

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


# (task, framework) -> predictor; a task's upload format is the one registered with accepts_uploads
_PREDICTORS: dict[tuple[str, str], type[Predictor]] = {}
_UPLOADS: dict[str, type[Predictor]] = {}


def register_predictor(task: str, cls: type[Predictor], *, accepts_uploads: bool = True) -> None:
    if (task, cls.framework) in _PREDICTORS or (accepts_uploads and task in _UPLOADS):
        raise ValueError(f"predictor {task!r}/{cls.framework!r} already registered")
    _PREDICTORS[(task, cls.framework)] = cls
    if accepts_uploads:
        _UPLOADS[task] = cls


def predictor_class(task: str, framework: str | None = None) -> type[Predictor]:
    """The predictor that serves a version of `task` stored in `framework` (None: the upload format)."""
    found = _UPLOADS.get(task) if framework is None else _PREDICTORS.get((task, framework))
    if found is None:
        raise InputError(_('no predictor for task %(task)s in format %(framework)s') % {"task": f"{task!r}", "framework": f"{framework!r}"})
    return found


def parameter_bytes(model: Any) -> int:
    """The bytes of a torch module's parameters, as they are held (dtype included)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


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
            raise InputError(_('pickled weights (pytorch_model.bin) are refused: upload model.safetensors'))
        if missing:
            raise InputError(_('the model folder lacks %(value)s') % {"value": ', '.join(missing)})
        from inference.ml.hf_check import check_hf_folder

        check_hf_folder(folder)

    def load(self, folder: Path, device: str) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.check_files(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        with BUILDING:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, trust_remote_code=False
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
        return parameter_bytes(self.model)

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        predictor = cls()
        predictor.load(folder, "cpu")
        proba = predictor.predict_proba(["This is an example."])
        example = predictions_from_proba(predictor.labels, proba)[0]
        return ArtifactInfo(cls.task, cls.framework, predictor.labels, {}, example.__dict__)


class TabularClassifier:
    """An ONNX graph over encoded features, run by onnxruntime, with its schema (model.onnx + schema.json).

    ONNX holds no code of the uploader's: standard operators only, no data outside the archive
    (inference/ml/onnx_check.py). Its first floating-point output of shape (rows, labels) gives
    logits, or probabilities when schema.json says `"output": "probabilities"` (skl2onnx's
    `output_probability` with zipmap off).
    """

    task: ClassVar[str] = "tabular-classification"
    framework: ClassVar[str] = "onnx"
    BACKGROUND_MAX_ROWS: ClassVar[int] = 1000
    MODEL_FILE: ClassVar[str] = "model.onnx"

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.device = "cpu"
        self.schema: dict[str, Any] = {}
        self.background: list[dict[str, Any]] = []
        self.size = 0

    @classmethod
    def check_files(cls, folder: Path) -> dict[str, Any]:
        if (folder / "model.pt").exists() and not (folder / cls.MODEL_FILE).exists():
            raise InputError(
                _('TorchScript (model.pt) is no longer accepted: it can run code of its own. Export the model to ONNX (model.onnx; the README shows how for PyTorch and scikit-learn)')
            )
        missing = [n for n in (cls.MODEL_FILE, "schema.json") if not (folder / n).is_file()]
        if missing:
            raise InputError(_('a tabular model needs model.onnx and schema.json; missing %(value)s') % {"value": ', '.join(missing)})
        schema = read_schema(folder)
        if schema.get("output", "logits") not in ("logits", "probabilities"):
            raise InputError(_("schema.json's 'output' is 'logits' (the default) or 'probabilities'"))
        return schema

    def load(self, folder: Path, device: str) -> None:
        import onnxruntime as ort

        from inference.ml.onnx_check import check_onnx

        self.schema = self.check_files(folder)
        self.labels = list(self.schema["labels"])
        check_onnx(folder / self.MODEL_FILE)  # also before every load: a cached folder is re-checked cheaply
        options = ort.SessionOptions()
        options.intra_op_num_threads = onnx_threads()
        options.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else []
        providers = [p for p in providers if p in ort.get_available_providers()] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(folder / self.MODEL_FILE), options, providers=providers)
        except Exception:  # onnxruntime's errors can quote the graph: say what failed, not what it said
            raise InputError(_('onnxruntime cannot load model.onnx')) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InputError(_('model.onnx must take one input (the encoded feature matrix); it takes %(count)s') % {"count": len(inputs)})
        self.input_name = inputs[0].name
        floats = [o for o in self.session.get_outputs() if o.type in ("tensor(float)", "tensor(double)")]
        if not floats:
            raise InputError(_('model.onnx has no floating-point output to read scores from'))
        self.output_name = floats[0].name
        self.device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        self.size = (folder / self.MODEL_FILE).stat().st_size
        self.background = read_background(self.schema, folder, self.BACKGROUND_MAX_ROWS)

    def validate(self, inputs: list[Any]) -> list[dict[str, Any]]:
        return validate_tabular_inputs(self.schema, inputs)

    def predict_proba(self, inputs: list[dict[str, Any]]) -> Any:
        return self.predict_proba_encoded(encode_rows(self.schema, list(inputs)))

    def predict_proba_encoded(self, matrix: Any) -> Any:
        import numpy as np

        (scores,) = self.session.run([self.output_name], {self.input_name: np.asarray(matrix, dtype=np.float32)})
        scores = np.asarray(scores, dtype=np.float64)
        if self.schema.get("output") == "probabilities":
            return scores
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def memory_bytes(self) -> int:
        return self.size

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        predictor = cls()
        predictor.load(folder, "cpu")
        try:
            proba = predictor.predict_proba([example_row(predictor.schema)])
        except MemoryError:
            raise
        except Exception as exc:  # the graph failed on a valid row; its message may quote the model
            if "allocate memory" in str(exc):
                raise MemoryError from None
            raise InputError(_('the model fails on an example row built from schema.json')) from None
        if proba.ndim != 2 or proba.shape != (1, len(predictor.labels)):
            raise InputError(_('the model returns scores of shape %(value)s for one row and %(count)s labels') % {"value": tuple(proba.shape), "count": len(predictor.labels)})
        example = predictions_from_proba(predictor.labels, proba)[0]
        # where people start in the playground: a typical row of the shipped training sample
        schema = {**predictor.schema, "typical": typical_row(predictor.schema, predictor.background)}
        return ArtifactInfo(cls.task, cls.framework, predictor.labels, schema, example.__dict__,
                            background_rows=len(predictor.background))


class LegacyTorchScriptTabular(TabularClassifier):
    """Versions registered as TorchScript before ONNX replaced it keep serving (their card says so).

    No new version is accepted in this format: a TorchScript module runs code of its own. Only
    a worker loads one, for a version a reviewer approved.
    """

    framework: ClassVar[str] = "torchscript"

    def load(self, folder: Path, device: str) -> None:
        import torch

        self.schema = read_schema(folder)
        self.labels = list(self.schema["labels"])
        self.module = torch.jit.load(str(folder / "model.pt"), map_location=device).eval()
        self.device = device
        self.background = read_background(self.schema, folder, self.BACKGROUND_MAX_ROWS)

    def predict_proba_encoded(self, matrix: Any) -> Any:
        import torch

        with torch.inference_mode():
            logits = self.module(torch.as_tensor(matrix, device=self.device)).float()
            return torch.softmax(logits, dim=-1).cpu().numpy()

    def memory_bytes(self) -> int:
        return parameter_bytes(self.module)

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        raise InputError(_('TorchScript is no longer accepted for new versions; export the model to ONNX'))


def onnx_threads() -> int:
    import os

    return max(1, int(os.environ.get("ONNX_THREADS", "1") or 1))


def read_schema(folder: Path) -> dict[str, Any]:
    try:
        return check_schema(json.loads((folder / "schema.json").read_text()))
    except FileNotFoundError:
        raise InputError(_('a tabular model needs schema.json')) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(_('schema.json is not valid JSON: %(exc)s') % {"exc": exc}) from None


def read_background(schema: dict[str, Any], folder: Path, max_rows: int) -> list[dict[str, Any]]:
    """background.jsonl: rows of the training data that SHAP explanations compare against (optional)."""
    path = folder / "background.jsonl"
    if not path.is_file():
        return []
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(_('background.jsonl is not JSON lines: %(exc)s') % {"exc": exc}) from None
    if not 1 <= len(rows) <= max_rows:
        raise InputError(_('background.jsonl needs 1 to %(max_rows)s rows; it has %(count)s') % {"max_rows": max_rows, "count": len(rows)})
    try:
        return validate_tabular_inputs(schema, rows)
    except InputError as exc:
        raise InputError(_('background.jsonl does not fit schema.json: %(exc)s') % {"exc": exc}) from None


class Int8TextClassifier(TextClassifier):
    """A text classifier compressed by Steward (inference/ml/compression.py): int8 Linear layers, served on CPU."""

    framework: ClassVar[str] = "transformers-int8"

    @classmethod
    def check_files(cls, folder: Path) -> None:
        from inference.ml import compression

        compression.check_files(folder)
        if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()):
            raise InputError(_('the model folder lacks tokenizer.json or vocab.txt'))

    def load(self, folder: Path, device: str) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from inference.ml import compression

        self.check_files(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        self.model = compression.load(folder, AutoModelForSequenceClassification)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.device = "cpu"  # the int8 kernels are CPU kernels, whatever device the worker has

    def memory_bytes(self) -> int:
        from inference.ml import compression

        return compression.memory_bytes(self.model)


class OnnxTextClassifier(TextClassifier):
    """A text classifier exported to ONNX by Steward's compression (method onnx-float32): the tokenizer
    and labels as the source had them, the graph run by onnxruntime on CPU with as many threads as
    torch has in this process (a worker's setting), so that it is compared with the source as served."""

    framework: ClassVar[str] = "onnx"

    @classmethod
    def check_files(cls, folder: Path) -> None:
        from inference.ml import compression

        compression.check_files(folder)
        if compression.manifest(folder)["method"] != compression.ONNX_METHOD:
            raise InputError(_('the folder does not hold an ONNX export'))
        if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()):
            raise InputError(_('the model folder lacks tokenizer.json or vocab.txt'))

    def load(self, folder: Path, device: str) -> None:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        from inference.ml import compression

        self.check_files(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.session = compression.OnnxSession(folder, threads=torch.get_num_threads())
        self.device = "cpu"  # onnxruntime's CPU provider, whatever device the worker has

    def logits(self, batch: Any) -> Any:
        return self.session.logits(batch)

    def memory_bytes(self) -> int:
        from inference.ml import compression

        return compression.memory_bytes(self.session)


register_predictor(TextClassifier.task, TextClassifier)  # type: ignore[arg-type]
register_predictor(TextClassifier.task, Int8TextClassifier, accepts_uploads=False)  # type: ignore[arg-type]
register_predictor(TextClassifier.task, OnnxTextClassifier, accepts_uploads=False)  # type: ignore[arg-type]
register_predictor(TabularClassifier.task, TabularClassifier)  # type: ignore[arg-type]
register_predictor(TabularClassifier.task, LegacyTorchScriptTabular, accepts_uploads=False)  # type: ignore[arg-type]


# language models that do not classify register themselves there (imported here, once this module's
# names exist, so that any import of the registry knows every task)
from inference.ml import language_models  # noqa: E402, F401


def inspect_artifact(task: str, folder: Path) -> ArtifactInfo:
    """Checks an unpacked upload: required files, loads, runs one example (raises InputError)."""
    from inference.ml import compression

    cls = predictor_class(task, compression.framework_of(folder) if compression.is_compressed(folder) else None)
    try:
        return cls.inspect(folder)  # type: ignore[attr-defined,no-any-return]
    except (InputError, MemoryError):
        raise
    except Exception as exc:  # a broken upload fails in many ways inside transformers; its text may quote files
        logger.info("artifact check failed: %s: %s", type(exc).__name__, str(exc)[:500])
        raise InputError(_('the model does not load (%(name)s)') % {"name": type(exc).__name__}) from None
