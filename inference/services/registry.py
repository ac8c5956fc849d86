"""The model registry: versions stored from checked archives (services/uploads.py), the review lifecycle, aliases."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.log.services import AuditActor, audit_record
from inference.evidence import version_evidence
from inference.exceptions import (
    ApprovalBlocked,
    IllegalTransition,
    IncompleteCard,
    ModelNotServable,
    SelfReview,
)
from inference.ml.predictors import ArtifactInfo
from inference.models import ModelAlias, ModelTransition, ModelVersion, RegisteredModel, VersionStatus
from portal.accounts.actor import Actor
from portal.accounts.models import Organization, User
from portal.accounts.roles import Cap
from portal.platform.locks import for_update

logger = logging.getLogger("steward.inference")

CARD_FIELDS = [
    "intended_use",
    "out_of_scope_uses",
    "training_data",
    "evaluation_data",
    "metrics",
    "limitations",
    "ethical_considerations",
    "owner",
    "languages",  # ISO 639-1 codes of the languages it supports ("en, zh"): inputs in others are flagged
]
CARD_REQUIRED_TO_SUBMIT = ["intended_use", "out_of_scope_uses", "training_data", "limitations",
                           "ethical_considerations", "owner"]



# What each field asks, for people: submission lists what is missing in these words.
CARD_QUESTIONS: dict[str, Any] = {
    "intended_use": _("what the model is for"),
    "out_of_scope_uses": _("what it must not be used for"),
    "training_data": _("what it was trained on"),
    "evaluation_data": _("what it was evaluated on"),
    "metrics": _("how well it does"),
    "limitations": _("its limitations"),
    "ethical_considerations": _("its ethical considerations"),
    "owner": _("who answers for it"),
    "languages": _("the languages it supports (ISO 639-1 codes, e.g. en, zh)"),
}
# Each field's name as people read it (the API and the stored card keep the keys above).
CARD_LABELS: dict[str, Any] = {
    "intended_use": _("Intended use"),
    "out_of_scope_uses": _("Out of scope uses"),
    "training_data": _("Training data"),
    "evaluation_data": _("Evaluation data"),
    "metrics": _("Metrics"),
    "limitations": _("Limitations"),
    "ethical_considerations": _("Ethical considerations"),
    "owner": _("Owner"),
    "languages": _("Languages"),
}


def card_missing(card: dict[str, Any]) -> list[str]:
    """The fields a reviewer needs that `card` leaves empty."""
    return [f for f in CARD_REQUIRED_TO_SUBMIT if not str(card.get(f, "")).strip()]


def card_missing_sentence(missing: list[str]) -> str:
    """'The model card does not yet say what the model is for and who answers for it; complete it before review.'"""
    words = [str(CARD_QUESTIONS[f]) for f in missing]
    listed = words[0] if len(words) == 1 else gettext("%(first)s and %(last)s") % {
        "first": gettext(", ").join(words[:-1]), "last": words[-1]}
    return gettext("The model card does not yet say %(missing)s; complete it before review.") % {"missing": listed}


def card_clean(card: Any) -> dict[str, Any]:
    if not isinstance(card, dict):
        raise IncompleteCard(gettext('The model card must be an object.'))
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise IncompleteCard(
            gettext('Unknown model card fields: %(join)s.') % {"join": ', '.join(unknown)}, details={"allowed": CARD_FIELDS}
        )
    card_languages_check(card.get("languages"))
    return {name: card.get(name, "") for name in CARD_FIELDS}


def card_languages_check(value: Any) -> None:
    """A card's languages are text of known ISO 639-1 codes (IncompleteCard, with a sentence, otherwise)."""
    if value in (None, ""):
        return
    from inference import languages

    if not isinstance(value, str):
        raise IncompleteCard(gettext("The card's languages must be text: ISO 639-1 codes separated by commas."))
    try:
        languages.parse(value)
    except ValueError as exc:
        raise IncompleteCard(str(exc), details={"field": "languages"}) from None


def version_store(*, organization: Organization, user: User, audit_actor: AuditActor, name: str, task: str,
                  path: Path, sha256: str, size: int, info: ArtifactInfo, card: dict[str, Any], description: str,
                  metrics: dict[str, Any] | None = None, privacy: dict[str, Any] | None = None,
                  on_commit: Callable[[ModelVersion], None] | None = None) -> ModelVersion:
    """Stores a checked artifact as the model's next draft version, audited, in one transaction
    (`on_commit` runs inside it); the stored file is removed again if the transaction fails."""
    with path.open("rb") as handle:
        suffix = ".zip" if handle.read(2) == b"PK" else ".tar.gz"
    stored_name = ""
    try:
        with transaction.atomic():
            model, _created = for_update(RegisteredModel.objects.all()).get_or_create(
                organization=organization, name=name, defaults={"created_by": user, "description": description},
            )
            number = (model.versions.aggregate(m=Max("version"))["m"] or 0) + 1
            with path.open("rb") as handle:
                stored_name = default_storage.save(
                    f"models/{organization.pk}/{name}/{number}-{sha256[:12]}{suffix}", File(handle)
                )
            version = ModelVersion.objects.create(
                model=model, version=number, task=task, framework=info.framework, labels=info.labels,
                input_schema=info.input_schema, artifact=stored_name, artifact_sha256=sha256,
                artifact_size=size, card=card, metrics=metrics or {}, created_by=user,
                background_rows=info.background_rows, privacy=privacy or {},
            )
            ModelTransition.objects.create(version=version, to_status=VersionStatus.DRAFT, actor=user,
                                           comment="registered")
            audit_record(
                action="model.registered", actor=audit_actor, organization_id=organization.pk,
                target_type="inference.ModelVersion", target_id=version.pk,
                payload={"model": name, "version": number, "task": task, "sha256": sha256, "bytes": size,
                         "labels": info.labels, "format": info.framework},
            )
            if on_commit is not None:
                on_commit(version)
            return version
    except BaseException:
        if stored_name:  # the row did not commit: keep nothing
            default_storage.delete(stored_name)
        raise


_ALLOWED = {
    "submit": ({VersionStatus.DRAFT, VersionStatus.REJECTED}, VersionStatus.SUBMITTED, Cap.MODEL_REGISTER),
    "approve": ({VersionStatus.SUBMITTED}, VersionStatus.APPROVED, Cap.MODEL_REVIEW),
    "reject": ({VersionStatus.SUBMITTED}, VersionStatus.REJECTED, Cap.MODEL_REVIEW),
    "retire": ({VersionStatus.APPROVED}, VersionStatus.RETIRED, Cap.MODEL_REVIEW),
}


@transaction.atomic
def model_version_transition(*, actor: Actor, version: ModelVersion, action: str, comment: str = "") -> ModelVersion:
    """Moves a version through draft -> submitted -> approved | rejected -> retired.

    Raises:
        IllegalTransition: the version is not in a state that allows `action`.
        SelfReview: the reviewer submitted the version.
        IncompleteCard: submitting without the card fields a reviewer needs.
    """
    sources, target, cap = _ALLOWED[action]
    actor.require(cap, f"{action} model versions")
    version = for_update(ModelVersion.objects.select_related("model")).get(pk=version.pk)
    if version.status not in sources:
        raise IllegalTransition(
            gettext('%(version)s is %(status)s; it cannot be %(action)sd (only from %(join)s).') % {"version": version, "status": version.status, "action": action, "join": ', '.join(sorted(sources))}
        )
    if action in ("approve", "reject") and version.submitted_by_id == actor.user.pk:
        raise SelfReview()
    if action == "approve":
        blocking = [e for e in version_evidence(version) if e.blocks_approval]
        if blocking:
            raise ApprovalBlocked(
                " ".join(e.reason for e in blocking), details={"evidence": [e.title for e in blocking]}
            )
    if action == "reject" and not comment.strip():
        raise IllegalTransition(gettext('A rejection needs a comment saying why.'))
    if action == "submit":
        missing = card_missing(version.card)
        if missing:
            raise IncompleteCard(card_missing_sentence(missing), details={"missing": missing})
        version.submitted_by = actor.user
    if action == "retire" and version.aliases.exists():
        names = ", ".join(version.aliases.values_list("name", flat=True))
        raise IllegalTransition(gettext('%(version)s is the target of alias %(names)s; move it first.') % {"version": version, "names": names})
    previous = version.status
    version.status = target
    version.save(update_fields=["status", "submitted_by"])
    ModelTransition.objects.create(
        version=version, from_status=previous, to_status=target, actor=actor.user, comment=comment
    )
    audit_record(
        action=f"model.{target}", actor=actor.audit_actor, organization_id=actor.organization.pk,
        target_type="inference.ModelVersion", target_id=version.pk,
        payload={"model": version.model.name, "version": version.version, "from": previous,
                 "to": target, "comment": comment},
    )
    return version


@transaction.atomic
def alias_move(*, actor: Actor, model: RegisteredModel, alias: str, version: ModelVersion) -> ModelAlias:
    actor.require(Cap.MODEL_REGISTER, "move aliases")
    # Read the status under lock: a retirement racing this move must not leave an alias on it.
    version = for_update(ModelVersion.objects.select_related("model")).get(pk=version.pk)
    if version.model_id != model.pk:
        raise IllegalTransition(gettext('%(version)s is not a version of %(name)s.') % {"version": version, "name": model.name})
    if not version.is_servable:
        raise ModelNotServable(gettext('%(version)s is %(status)s; an alias may only point at an approved version.') % {"version": version, "status": version.status})
    existing = for_update(ModelAlias.objects.filter(model=model, name=alias)).first()
    previous = existing.version.version if existing else None
    if existing:
        existing.version = version
        existing.updated_by = actor.user
        existing.save(update_fields=["version", "updated_by", "updated_at"])
        moved = existing
    else:
        moved = ModelAlias.objects.create(model=model, name=alias, version=version, updated_by=actor.user)
    audit_record(
        action="alias.moved", actor=actor.audit_actor, organization_id=actor.organization.pk,
        target_type="inference.RegisteredModel", target_id=model.pk,
        payload={"model": model.name, "alias": alias, "from": previous, "to": version.version},
    )
    return moved
