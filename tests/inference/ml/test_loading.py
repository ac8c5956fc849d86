"""Models built by threads of one worker at once come out whole (inference/ml/loading.py says why they
would not: transformers patches process-wide state while it builds one)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from inference.ml.demos import ASSISTANT, SENTIMENT, build_cached
from inference.ml.language_models import load_causal_lm
from inference.ml.predictors import TextClassifier
from inference.runtime import worker_libraries_import


def _on_meta(model: Any) -> list[str]:
    return [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]


def test_models_loaded_by_threads_at_once_have_every_weight(assistant_bytes, sentiment_bytes) -> None:
    # given: the generative model and a classifier, as a worker's threads load them on their first requests
    # (after the worker's start resolved the libraries' lazy names, as worker_init does)
    worker_libraries_import()
    assistant = Path(build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)[0])
    sentiment = Path(build_cached(SENTIMENT, lambda *a: None, settings.BUILD_CACHE_DIR)[0])
    start = threading.Barrier(4)
    found: dict[str, list[str]] = {}
    failed: list[BaseException] = []

    def assistant_loads(key: str) -> None:
        start.wait()
        try:
            for round_ in range(2):
                found[f"{key}.{round_}"] = _on_meta(load_causal_lm(assistant))
        except BaseException as exc:  # a thread's failure is the test's
            failed.append(exc)

    def classifier_loads(key: str) -> None:
        start.wait()
        try:
            for round_ in range(3):
                classifier = TextClassifier()
                classifier.load(sentiment, "cpu")
                found[f"{key}.{round_}"] = _on_meta(classifier.model)
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=assistant_loads, args=(f"assistant{i}",)) for i in range(2)]
    threads += [threading.Thread(target=classifier_loads, args=(f"classifier{i}",)) for i in range(2)]
    # when: all at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: every model has all its weights (without the lock, SmolLM2's tied lm_head.weight stayed on the meta
    # device in about half the loads)
    assert not failed, failed
    assert len(found) == 10 and not any(found.values()), {k: v for k, v in found.items() if v}
