"""The demo models' recipes and their builds, cached by recipe: the ML side alone, no Django.

The benchmarks of the ML layer (bench-explain, bench-dp) build and load the demo models through this
module, so that they run where only the ML stack is installed (a lent GPU machine); registering and
approving them in the portal is inference/services/demo_publishing.py's part.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.ml import training

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


def default_cache_dir() -> Path:
    """settings.BUILD_CACHE_DIR read without Django (the same variable and default; a test keeps them
    equal), for the benchmarks and GPU tests that run where only the ML stack is installed."""
    return Path(os.environ.get("BUILD_CACHE_DIR", str(ROOT / "var" / "build-cache"))).resolve()


@dataclass(frozen=True)
class DemoModel:
    name: str
    task: str
    recipe: dict[str, Any]
    description: str
    card: dict[str, str]
    metrics_text: str  # the card's metrics, for people: formatted with what the build measured
    artifact_format: int = 1  # bumped when the artifact's format changes, so that the build cache misses

    def build(self, out: Path, progress: training.Progress) -> dict[str, Any]:
        if self.name == "sentiment":
            return training.build_sentiment(
                out, DATA / "sst2" / "train_subset.tsv", DATA / "sst2" / "dev.tsv", progress=progress, **self.recipe
            )
        return training.build_income(
            out, DATA / "adult" / "adult_train_subset.data", DATA / "adult" / "adult.test", progress=progress,
            **self.recipe,
        )


SENTIMENT = DemoModel(
    name="sentiment",
    task="text-classification",
    recipe={"examples": 4000, "epochs": 1, "batch_size": 32, "lr": 5e-5, "max_length": 64, "seed": 0},
    description="Binary sentiment of English text (MiniLM-L6 fine-tuned on SST-2).",
    card={
        "intended_use": "Sentiment (POSITIVE/NEGATIVE) of short English reviews and comments, "
        "to triage customer feedback; a person reviews every decision that affects someone.",
        "out_of_scope_uses": "Decisions about people; non-English text; sarcasm, medical or legal text; "
        "moderation without human review.",
        "training_data": "4,000 sentences sampled from the GLUE SST-2 training set (movie reviews, "
        "Socher et al. 2013); base encoder sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0).",
        "evaluation_data": "The full SST-2 dev set (872 sentences).",
        "limitations": "Trained on movie reviews: other domains, long texts (>64 tokens in training) and "
        "mixed sentiment are less reliable. Identity terms may shift scores; see the bias report.",
        "ethical_considerations": "Sentiment models are known to associate identity terms with negative "
        "sentiment (Dixon et al. 2018); check counterfactual identity tests before use on people's text.",
        "owner": "Demo Bank, model risk team",
    },
    metrics_text="Accuracy {sst2_dev_accuracy:.1%} on the {sst2_dev_examples} sentences of the SST-2 dev set "
    "(trained on {train_examples:,} sentences, epochs: {epochs}), measured when the model was built.",
)
INCOME = DemoModel(
    name="income",
    task="tabular-classification",
    recipe={"epochs": 12, "seed": 0, "background": 100},
    description="Whether yearly income exceeds $50K (an MLP on UCI Adult).",
    card={
        "intended_use": "A teaching and evaluation model for fairness tooling: predicts whether yearly "
        "income exceeds $50K from census attributes.",
        "out_of_scope_uses": "Any real decision about a person (credit, hiring, housing, benefits).",
        "training_data": "16,000 rows of UCI Adult (1994 US census extract, Becker & Kohavi 1996, CC BY 4.0). "
        "sex and race are inputs on purpose, so that bias reports can measure disparities.",
        "evaluation_data": "The full UCI Adult test set (16,281 rows).",
        "limitations": "1994 US data; protected attributes are used as inputs; labels reflect historical "
        "pay gaps.",
        "ethical_considerations": "Known disparities by sex and race in the data and the model; never "
        "use to decide about people.",
        "owner": "Demo Bank, model risk team",
    },
    metrics_text="Accuracy {adult_test_accuracy:.1%} on the {adult_test_examples:,} rows of the UCI Adult test set "
    "(trained on {train_examples:,} rows, epochs: {epochs}), measured when the model was built; "
    "accuracy by sex and race is in its bias report.",
    artifact_format=2,  # ONNX since TorchScript was refused for uploads (format 1)
)
DEMO_MODELS = [SENTIMENT, INCOME]


def recipe_key(model: DemoModel) -> str:
    digest = hashlib.sha256(json.dumps([model.name, model.recipe, model.artifact_format], sort_keys=True).encode())
    return f"{model.name}-{digest.hexdigest()[:12]}"


def build_cached(model: DemoModel, progress: training.Progress, cache: Path) -> tuple[Path, dict[str, Any]]:
    """The built model folder and its metrics, built once per recipe in `cache` (settings.BUILD_CACHE_DIR)."""
    target = cache / recipe_key(model)
    if (target / "metrics.json").is_file():
        progress(1, 1, "built before: from the build cache")
        return target / "model", json.loads((target / "metrics.json").read_text())
    temporary = cache / f".{recipe_key(model)}.building"
    shutil.rmtree(temporary, ignore_errors=True)
    metrics = model.build(temporary / "model", progress)
    (temporary / "metrics.json").write_text(json.dumps(metrics))
    shutil.rmtree(target, ignore_errors=True)
    temporary.rename(target)
    return target / "model", metrics
