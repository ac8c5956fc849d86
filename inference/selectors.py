"""Reading models, versions, predictions and jobs, always within the actor's organisation."""

from __future__ import annotations

import re

from django.db.models import Prefetch, QuerySet

from inference.exceptions import ModelNotFound, ModelNotServable
from inference.models import (
    BatchJob,
    Explanation,
    FineTuneJob,
    GlobalExplanation,
    ModelAlias,
    ModelVersion,
    Prediction,
    RegisteredModel,
    TrainingDataset,
    VersionStatus,
)
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.exceptions import NotFound

REF = re.compile(r"^(?P<name>[-a-zA-Z0-9_]+)(@(?P<ref>[-a-zA-Z0-9_]+))?$")


def _sees_unapproved(actor: Actor) -> bool:
    return actor.can(Cap.MODEL_REGISTER) or actor.can(Cap.MODEL_REVIEW) or actor.can(Cap.AUDIT_READ)


def version_list_visible(*, actor: Actor) -> QuerySet[ModelVersion]:
    versions = ModelVersion.objects.filter(model__organization=actor.organization)
    if not _sees_unapproved(actor):  # consumers see what serves them
        versions = versions.filter(status=VersionStatus.APPROVED)
    return versions


def model_list(*, actor: Actor) -> QuerySet[RegisteredModel]:
    visible = version_list_visible(actor=actor).order_by("-version")
    return (
        RegisteredModel.objects.filter(organization=actor.organization, versions__in=visible)
        .distinct()
        .prefetch_related(Prefetch("versions", queryset=visible), "aliases__version")
        .order_by("name")
    )


def model_get(*, actor: Actor, name: str) -> RegisteredModel:
    model = model_list(actor=actor).filter(name=name).first()
    if model is None:
        raise ModelNotFound(f"No model named {name!r} in this organisation.")
    return model


def version_get(*, actor: Actor, name: str, version: int) -> ModelVersion:
    found = (
        version_list_visible(actor=actor)
        .select_related("model")
        .filter(model__name=name, version=version)
        .first()
    )
    if found is None:
        raise ModelNotFound(f"No version {version} of model {name!r} in this organisation.")
    return found


def version_resolve_for_serving(*, actor: Actor, ref: str) -> ModelVersion:
    """`name`, `name@alias` or `name@3` to a servable version (the `production` alias by default)."""
    match = REF.match(ref)
    if match is None:
        raise ModelNotFound(f"{ref!r} is not a model reference (name, name@alias or name@version).")
    name, pointer = match["name"], match["ref"] or "production"
    model = RegisteredModel.objects.filter(organization=actor.organization, name=name).first()
    if model is None:
        raise ModelNotFound(f"No model named {name!r} in this organisation.")
    if pointer.isdigit():
        version = ModelVersion.objects.filter(model=model, version=int(pointer)).select_related("model").first()
        if version is None:
            raise ModelNotFound(f"Model {name!r} has no version {pointer}.")
    else:
        alias = ModelAlias.objects.filter(model=model, name=pointer).select_related("version__model").first()
        if alias is None:
            raise ModelNotFound(f"Model {name!r} has no alias {pointer!r}.")
        version = alias.version
    if not version.is_servable and not _sees_unapproved(actor):
        # Consumers do not learn that unapproved versions exist.
        raise ModelNotFound(f"Model {name!r} has no servable version {pointer}.")
    if not version.is_servable:
        raise ModelNotServable(
            f"{name}@{version.version} is {version.status}; only approved versions serve predictions."
        )
    return version


def prediction_get(*, actor: Actor, pk: int) -> Prediction:
    found = (
        Prediction.objects.filter(organization=actor.organization, pk=pk)
        .select_related("model_version__model")
        .first()
    )
    if found is None:
        raise NotFound("No such prediction in this organisation.")
    return found


def job_list(*, actor: Actor) -> QuerySet[BatchJob]:
    return BatchJob.objects.filter(organization=actor.organization).select_related("model_version__model")


def job_get(*, actor: Actor, pk: int) -> BatchJob:
    found = job_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound("No such job in this organisation.")
    return found


def explanation_get(*, actor: Actor, pk: int) -> Explanation:
    found = (Explanation.objects.filter(organization=actor.organization, pk=pk)
             .select_related("model_version__model", "prediction").first())
    if found is None:
        raise NotFound("No such explanation in this organisation.")
    return found


def global_explanation_list(*, actor: Actor, version: ModelVersion) -> QuerySet[GlobalExplanation]:
    return (GlobalExplanation.objects.filter(organization=actor.organization, model_version=version)
            .select_related("model_version__model").order_by("-number"))


def global_explanation_get(*, actor: Actor, pk: int) -> GlobalExplanation:
    found = (GlobalExplanation.objects.filter(organization=actor.organization, pk=pk)
             .select_related("model_version__model", "created_by").first())
    if found is None:
        raise NotFound("No such global explanation in this organisation.")
    return found


def dataset_list(*, actor: Actor) -> QuerySet[TrainingDataset]:
    return (TrainingDataset.objects.filter(organization=actor.organization)
            .select_related("model", "created_by").prefetch_related("ledger"))


def dataset_get(*, actor: Actor, pk: int) -> TrainingDataset:
    found = dataset_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound("No such training dataset in this organisation.")
    return found


def finetune_list(*, actor: Actor) -> QuerySet[FineTuneJob]:
    return FineTuneJob.objects.filter(organization=actor.organization).select_related(
        "base_version__model", "result_version", "dataset")


def finetune_get(*, actor: Actor, pk: int) -> FineTuneJob:
    found = finetune_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound("No such fine-tuning job in this organisation.")
    return found
