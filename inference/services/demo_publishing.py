"""The demo models, registered, reviewed and served: built once per checkout by inference/ml/demos.py."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from inference.ml import artifacts, training
from inference.ml.demos import DemoModel, build_cached
from inference.models import ModelAlias, RegisteredModel, VersionStatus
from inference.services.registry import alias_move, model_version_transition
from inference.services.uploads import model_version_register
from portal.accounts.actor import actor_for_membership
from portal.accounts.models import Membership


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
    served = ModelAlias.objects.filter(model=existing, name="production").select_related("version").first()
    # a demo served from TorchScript, which is no longer accepted, is rebuilt as ONNX and takes the alias
    if served is not None and served.version.framework != "torchscript":
        progress(1, 1, "already served")
        log(f"{model.name}: already served (production alias exists)")
        return
    folder, metrics = build_cached(model, progress, settings.BUILD_CACHE_DIR)
    owner_actor = actor_for_membership(owner.user, owner.organization, owner.role)
    reviewer_actor = actor_for_membership(reviewer.user, reviewer.organization, reviewer.role)
    card = {**model.card, "metrics": model.metrics_text.format(**metrics)}
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
