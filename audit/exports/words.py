"""The names of the numbers an export tabulates (a version's metrics, a privacy guarantee's parameters),
for a reader of the PDF in another language than English.

The JSON and the CSV keep the identifiers (stable keys a machine reads). The English PDF writes an
identifier as words ("holdout accuracy"); another language names each part of it and keeps the identifier
beside, so that a reader can find the number in the JSON. A part this table does not know stays as it is
(a demo's class names, a metric an uploader chose).
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext, gettext_lazy

PARTS = {
    # evaluation
    "evaluation": gettext_lazy("evaluation"), "rows": gettext_lazy("rows"), "dataset": gettext_lazy("dataset"),
    "dataset_sha256": gettext_lazy("dataset SHA-256"), "accuracy": gettext_lazy("accuracy"),
    "f1_macro": gettext_lazy("macro F1"), "roc_auc": gettext_lazy("ROC AUC"),
    "roc_auc_of": gettext_lazy("ROC AUC of"), "calibration_error": gettext_lazy("calibration error"),
    "calibration_bins": gettext_lazy("calibration bins"), "converted_from": gettext_lazy("converted from"),
    "holdout_accuracy": gettext_lazy("held-out accuracy"),
    "base_holdout_accuracy": gettext_lazy("base version's held-out accuracy"),
    "holdout_perplexity": gettext_lazy("held-out perplexity"),
    "base_holdout_perplexity": gettext_lazy("base version's held-out perplexity"),
    "perplexity": gettext_lazy("perplexity"), "base_perplexity": gettext_lazy("base version's perplexity"),
    # compression
    "compression": gettext_lazy("compression"), "method": gettext_lazy("method"),
    "description": gettext_lazy("description"), "keep_float": gettext_lazy("layers kept in float"),
    "quantized_layers": gettext_lazy("quantised layers"), "source_version": gettext_lazy("source version"),
    "source_sha256": gettext_lazy("source SHA-256"), "bytes": gettext_lazy("bytes on disk"),
    "memory_bytes": gettext_lazy("bytes in memory"), "source": gettext_lazy("source"),
    "compressed": gettext_lazy("compressed"), "torch_threads": gettext_lazy("torch threads"),
    "device": gettext_lazy("device"), "accuracy_delta_points": gettext_lazy("accuracy change (points)"),
    "compressed_accuracy": gettext_lazy("compressed accuracy"), "source_accuracy": gettext_lazy("source accuracy"),
    "compressed_perplexity": gettext_lazy("compressed perplexity"),
    "source_perplexity": gettext_lazy("source perplexity"), "perplexity_ratio": gettext_lazy("perplexity ratio"),
    "greedy_agreement": gettext_lazy("greedy agreement"), "label_agreement": gettext_lazy("label agreement"),
    "exact_continuations": gettext_lazy("exact continuations"), "latency_ms": gettext_lazy("latency (ms)"),
    "latency_rows": gettext_lazy("rows timed"), "max_probability_change": gettext_lazy("largest probability change"),
    "new_tokens": gettext_lazy("new tokens"), "prompts": gettext_lazy("prompts"), "texts": gettext_lazy("texts"),
    "tokens": gettext_lazy("tokens"), "rows_per_second": gettext_lazy("rows per second"),
    "tokens_per_second": gettext_lazy("tokens per second"), "speedup": gettext_lazy("speed-up"),
    "speedup_measure": gettext_lazy("speed-up measured as"),
    # a privacy guarantee
    "epsilon": "ε", "delta": "δ", "accountant": gettext_lazy("accountant"), "mechanism": gettext_lazy("mechanism"),
    "noise_multiplier": gettext_lazy("noise multiplier"), "sample_rate": gettext_lazy("sampling rate"),
    "steps": gettext_lazy("steps"), "epochs": gettext_lazy("epochs"), "batch_size": gettext_lazy("batch size"),
    "max_grad_norm": gettext_lazy("clipping norm"), "learning_rate": gettext_lazy("learning rate"),
    "lr_schedule": gettext_lazy("learning-rate schedule"), "training_rows": gettext_lazy("training rows"),
    "base_version": gettext_lazy("base version"), "holdout_rows": gettext_lazy("held-out rows"),
    "secure_mode": gettext_lazy("secure noise"), "job": gettext_lazy("fine-tuning job"),
    "unit": gettext_lazy("unit of privacy"), "adapter": gettext_lazy("adapter"),
}


def key_said(key: str) -> str:
    """`key` (an identifier, its parts joined by dots) for the reader of the active language."""
    plain = key.replace("_", " ")
    if (translation.get_language() or "en").startswith("en"):
        return plain
    parts = [str(PARTS.get(part, part)) for part in key.split(".")]
    return gettext("%(words)s (%(key)s)") % {"words": " · ".join(parts), "key": key}
