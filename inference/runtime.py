"""What a worker process holds: loaded models (LRU, memory-bounded) each with its batcher.

Artifacts are fetched through Django's storage (a folder, or S3 in production), checked against
their SHA-256 before loading, and unpacked once per machine.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils.translation import gettext

from inference.exceptions import ArtifactMismatch
from inference.ml import artifacts
from inference.ml.batching import DynamicBatcher
from inference.ml.cache import ModelCache
from inference.ml.device import best_device
from inference.ml.loading import BUILDING
from inference.ml.predictors import Predictor, predictor_class
from inference.models import ModelVersion

logger = logging.getLogger("steward.inference")


@dataclass
class LoadedModel:
    predictor: Predictor
    batcher: DynamicBatcher
    explainer: Any = None  # built on the first explanation; evicted with the model


def artifact_folder(version: ModelVersion) -> Path:
    """The unpacked artifact of a version on this machine, after checking its SHA-256."""
    cache_dir = Path(settings.ARTIFACT_CACHE_DIR)
    unpacked = cache_dir / version.artifact_sha256
    if unpacked.is_dir():
        return unpacked
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".download-") as temporary:
        with default_storage.open(version.artifact, "rb") as source:
            digest, _ = artifacts.sha256_stream(_Tee(source, temporary))  # type: ignore[arg-type]
        temporary.flush()
        if digest != version.artifact_sha256:
            raise ArtifactMismatch(
                gettext('The artifact of %(version)s does not match its recorded SHA-256; refusing to load it.') % {"version": version}
            )
        return artifacts.unpack_cached(
            Path(temporary.name), cache_dir, digest, max_unpacked_bytes=settings.MODEL_MAX_UNPACKED_BYTES
        )


def meta_skeleton(version: ModelVersion, auto_class: Any) -> Any:
    """A Hugging Face version's architecture built from its config on the meta device: its layers'
    names and shapes, no weights read and no code of the upload's run (a request's checks in the web)."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(artifact_folder(version)), local_files_only=True, trust_remote_code=False)
    with BUILDING, torch.device("meta"):
        return auto_class.from_config(config, trust_remote_code=False)


class _Tee:
    def __init__(self, source: Any, sink: Any) -> None:
        self.source, self.sink = source, sink

    def read(self, n: int = -1) -> bytes:
        block = self.source.read(n)
        self.sink.write(block)
        return block  # type: ignore[no-any-return]


def _load(version: ModelVersion) -> LoadedModel:
    folder = artifact_folder(version)
    predictor = predictor_class(version.task, version.framework)()
    device = best_device()
    predictor.load(folder, device)
    logger.info("loaded %s (%s) on %s", version, version.task, device)
    batcher = DynamicBatcher(
        predictor.predict_proba,
        max_batch=settings.BATCH_MAX_SIZE,
        max_wait_s=settings.BATCH_MAX_WAIT_MS / 1000,
        name=str(version),
    )
    return LoadedModel(predictor=predictor, batcher=batcher)


_cache: ModelCache[LoadedModel] | None = None


def model_cache() -> ModelCache[LoadedModel]:
    global _cache
    if _cache is None:
        _cache = ModelCache(
            max_bytes=settings.MODEL_CACHE_MAX_MB * 2**20,
            size_of=lambda loaded: loaded.predictor.memory_bytes(),
            on_evict=lambda loaded: loaded.batcher.close(),
        )
    return _cache


def loaded_model(version: ModelVersion) -> LoadedModel:
    return model_cache().get(f"{version.pk}:{version.artifact_sha256}", lambda: _load(version))


_finisher: DynamicBatcher | None = None


def prediction_finisher(finish_many: Any) -> DynamicBatcher:
    """The worker's one batcher for finishing predictions (their writes, in one transaction)."""
    global _finisher
    if _finisher is None:
        _finisher = DynamicBatcher(finish_many, max_batch=64, max_wait_s=0.002, name="finisher")
    return _finisher


def explainer_for(version: ModelVersion) -> tuple[Any, str]:
    """The explainer of a loaded model (built once, kept with it in the cache), and the device."""
    from inference.ml.explain import TabularExplainer, TextExplainer

    loaded = loaded_model(version)
    if loaded.explainer is None:
        if version.task == "text-classification":
            loaded.explainer = TextExplainer(loaded.predictor)
        else:
            loaded.explainer = TabularExplainer(loaded.predictor, loaded.predictor.background)  # type: ignore[attr-defined]
    return loaded.explainer, loaded.predictor.device


_generators: ModelCache[Any] | None = None


def loaded_generator(version: ModelVersion) -> Any:
    """The generative model of a version on this worker (inference/ml/generation.Generator), with its
    continuous batch running; evicted (its batch stopped) under memory pressure like the others."""
    global _generators
    if _generators is None:
        _generators = ModelCache(max_bytes=settings.MODEL_CACHE_MAX_MB * 2**20, size_of=lambda g: g.memory,
                                 on_evict=lambda g: g.close())

    def load() -> Any:
        import torch

        from inference.ml.generation import Generator

        torch.set_num_threads(settings.GENERATION_THREADS)
        device = best_device()
        generator = Generator(artifact_folder(version), device, cache_tokens=settings.GENERATION_CACHE_TOKENS)
        logger.info("loaded %s (text-generation) on %s, %d torch thread(s)", version, device, torch.get_num_threads())
        return generator

    return _generators.get(f"{version.pk}:{version.artifact_sha256}", load)


def generators_close() -> None:
    """Stops every continuous batch of this process (a worker that stops: their threads would keep it alive)."""
    if _generators is not None:
        _generators.clear()


# Resolved once in the worker's main thread before its pool's threads start. transformers 5 resolves
# its public names lazily (the submodule that defines one is imported on first use), and two threads
# importing modules that import each other can meet Python's import-deadlock detection, which hands
# one of them a partly initialised module: two compressions started together on a threads-pool worker
# both failed with "cannot import name 'AutoTokenizer' from 'transformers'" (CI's schemathesis run).
WORKER_LIBRARIES = ("torch", "numpy", "transformers", "peft", "opacus", "shap", "onnx", "onnxruntime")
TRANSFORMERS_NAMES = (
    "AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification", "AutoTokenizer",
    "DynamicCache", "GenerationConfig",
)


def worker_libraries_import() -> None:
    import importlib

    for name in WORKER_LIBRARIES:
        importlib.import_module(name)
    transformers = importlib.import_module("transformers")
    for name in TRANSFORMERS_NAMES:
        getattr(transformers, name)
    importlib.import_module("transformers.generation.configuration_utils")
