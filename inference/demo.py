"""The demo models: built once per checkout (cached by their recipe), registered, reviewed, served."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from inference.ml import artifacts, training
from inference.models import ModelAlias, RegisteredModel, VersionStatus
from inference.services.registry import alias_move, model_version_register, model_version_transition
from portal.accounts.actor import actor_for_membership
from portal.accounts.models import Membership

DATA = Path(settings.BASE_DIR) / "data"


@dataclass(frozen=True)
class DemoModel:
    name: str
    task: str
    recipe: dict[str, Any]
    description: str
    card: dict[str, str]

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
)
DEMO_MODELS = [SENTIMENT, INCOME]


def recipe_key(model: DemoModel) -> str:
    digest = hashlib.sha256(json.dumps([model.name, model.recipe, 1], sort_keys=True).encode())
    return f"{model.name}-{digest.hexdigest()[:12]}"


def build_cached(model: DemoModel, progress: training.Progress) -> tuple[Path, dict[str, Any]]:
    """The built model folder and its metrics, built once per recipe in BUILD_CACHE_DIR."""
    cache = Path(settings.BUILD_CACHE_DIR)
    target = cache / recipe_key(model)
    if (target / "metrics.json").is_file():
        return target / "model", json.loads((target / "metrics.json").read_text())
    temporary = cache / f".{recipe_key(model)}.building"
    shutil.rmtree(temporary, ignore_errors=True)
    metrics = model.build(temporary / "model", progress)
    (temporary / "metrics.json").write_text(json.dumps(metrics))
    shutil.rmtree(target, ignore_errors=True)
    temporary.rename(target)
    return target / "model", metrics


def demo_model_publish(
    model: DemoModel, *, organization_slug: str = "demo", progress: training.Progress,
    log: Callable[[str], None] = print,
) -> None:
    """Builds (cached), registers as the demo owner, approves as the demo reviewer, aliases production."""
    owner = Membership.objects.select_related("user", "organization").get(
        organization__slug=organization_slug, user__username="demo-owner"
    )
    reviewer = Membership.objects.select_related("user", "organization").get(
        organization__slug=organization_slug, user__username="demo-reviewer"
    )
    existing = RegisteredModel.objects.filter(organization=owner.organization, name=model.name).first()
    if existing and ModelAlias.objects.filter(model=existing, name="production").exists():
        log(f"{model.name}: already served (production alias exists)")
        return
    folder, metrics = build_cached(model, progress)
    owner_actor = actor_for_membership(owner.user, owner.organization, owner.role)
    reviewer_actor = actor_for_membership(reviewer.user, reviewer.organization, reviewer.role)
    card = {**model.card, "metrics": json.dumps(metrics)}
    with transaction.atomic():
        version = model_version_register(
            actor=owner_actor, name=model.name, task=model.task, archive=io.BytesIO(artifacts.pack_directory(folder)),
            card=card, description=model.description, metrics=metrics,
        )
        model_version_transition(actor=owner_actor, version=version, action="submit", comment="demo model")
        model_version_transition(actor=reviewer_actor, version=version, action="approve",
                                 comment="demo model: evaluation metrics on the card")
        version.refresh_from_db()
        assert version.status == VersionStatus.APPROVED
        alias_move(actor=owner_actor, model=version.model, alias="production", version=version)
    log(f"{model.name}: registered as version {version.version}, approved, aliased production; {metrics}")
