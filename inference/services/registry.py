"""The model registry: registration from checked archives, the review lifecycle, aliases."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from audit.log.services import audit_record
from inference.evidence import version_evidence
from inference.exceptions import (
    ApprovalBlocked,
    ArchiveTooLarge,
    IllegalTransition,
    IncompleteCard,
    InvalidArchive,
    ModelNotServable,
    SelfReview,
)
from inference.ml import artifacts
from inference.ml.schema import InputError
from inference.models import ModelAlias, ModelTransition, ModelVersion, RegisteredModel, Task, VersionStatus
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap

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
]
CARD_REQUIRED_TO_SUBMIT = ["intended_use", "out_of_scope_uses", "training_data", "limitations",
                           "ethical_considerations", "owner"]



def card_clean(card: Any) -> dict[str, Any]:
    if not isinstance(card, dict):
        raise IncompleteCard("The model card must be an object.")
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise IncompleteCard(
            f"Unknown model card fields: {', '.join(unknown)}.", details={"allowed": CARD_FIELDS}
        )
    return {name: card.get(name, "") for name in CARD_FIELDS}


def _spool(upload: BinaryIO, folder: Path) -> tuple[Path, str, int]:
    path = folder / "upload"
    limit = settings.MODEL_MAX_ARCHIVE_BYTES
    size = 0
    import hashlib

    digest = hashlib.sha256()
    with path.open("wb") as out:
        while block := upload.read(1 << 20):
            size += len(block)
            if size > limit:
                raise ArchiveTooLarge(f"The archive is larger than the limit of {limit} bytes.")
            digest.update(block)
            out.write(block)
    return path, digest.hexdigest(), size


def model_version_register(
    *,
    actor: Actor,
    name: str,
    task: str,
    archive: BinaryIO,
    card: dict[str, Any] | None = None,
    description: str = "",
    metrics: dict[str, Any] | None = None,
    privacy: dict[str, Any] | None = None,
) -> ModelVersion:
    """Registers a new draft version from an uploaded archive, checked before anything is kept.

    The archive must be a .zip or .tar.gz within size limits, with no links or paths outside it,
    holding the files its task needs; the model must load and run one example. Otherwise a
    clear error, and nothing is stored.
    """
    actor.require(Cap.MODEL_REGISTER, "register models")
    if task not in Task.values:
        raise InvalidArchive(f"Unknown task {task!r}; use one of {', '.join(Task.values)}.")
    card = card_clean(card or {})
    workdir = Path(tempfile.mkdtemp(prefix="steward-upload-"))
    try:
        path, sha256, size = _spool(archive, workdir)
        try:
            artifacts.extract(path, workdir / "model", max_unpacked_bytes=settings.MODEL_MAX_UNPACKED_BYTES)
            from inference.ml.predictors import inspect_artifact

            info = inspect_artifact(task, workdir / "model")
        except (artifacts.ArchiveError, InputError) as exc:
            raise InvalidArchive(str(exc), details=getattr(exc, "errors", {}) or {}) from None
        return _version_store(
            actor=actor, name=name, task=task, path=path, sha256=sha256, size=size, info=info,
            card=card, description=description, metrics=metrics or {}, privacy=privacy or {},
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _version_store(*, actor: Actor, name: str, task: str, path: Path, sha256: str, size: int,
                   info: Any, card: dict[str, Any], description: str, metrics: dict[str, Any],
                   privacy: dict[str, Any]) -> ModelVersion:
    with path.open("rb") as handle:
        suffix = ".zip" if handle.read(2) == b"PK" else ".tar.gz"
    stored_name = ""
    try:
        with transaction.atomic():
            model, _created = RegisteredModel.objects.select_for_update().get_or_create(
                organization=actor.organization, name=name,
                defaults={"created_by": actor.user, "description": description},
            )
            number = (model.versions.aggregate(m=Max("version"))["m"] or 0) + 1
            with path.open("rb") as handle:
                stored_name = default_storage.save(
                    f"models/{actor.organization.pk}/{name}/{number}-{sha256[:12]}{suffix}", File(handle)
                )
            version = ModelVersion.objects.create(
                model=model, version=number, task=task, framework=info.framework, labels=info.labels,
                input_schema=info.input_schema, artifact=stored_name, artifact_sha256=sha256,
                artifact_size=size, card=card, metrics=metrics, created_by=actor.user,
                background_rows=info.background_rows, privacy=privacy,
            )
            ModelTransition.objects.create(version=version, to_status=VersionStatus.DRAFT, actor=actor.user,
                                           comment="registered")
            audit_record(
                action="model.registered", actor=actor.audit_actor, organization_id=actor.organization.pk,
                target_type="inference.ModelVersion", target_id=version.pk,
                payload={"model": name, "version": number, "task": task, "sha256": sha256, "bytes": size,
                         "labels": info.labels},
            )
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
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    if version.status not in sources:
        raise IllegalTransition(
            f"{version} is {version.status}; it cannot be {action}d "
            f"(only from {', '.join(sorted(sources))})."
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
        raise IllegalTransition("A rejection needs a comment saying why.")
    if action == "submit":
        missing = [f for f in CARD_REQUIRED_TO_SUBMIT if not str(version.card.get(f, "")).strip()]
        if missing:
            raise IncompleteCard(
                f"The model card needs {', '.join(missing)} before review.", details={"missing": missing}
            )
        version.submitted_by = actor.user
    if action == "retire" and version.aliases.exists():
        names = ", ".join(version.aliases.values_list("name", flat=True))
        raise IllegalTransition(f"{version} is the target of alias {names}; move it first.")
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
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    if version.model_id != model.pk:
        raise IllegalTransition(f"{version} is not a version of {model.name}.")
    if not version.is_servable:
        raise ModelNotServable(f"{version} is {version.status}; an alias may only point at an approved version.")
    existing = ModelAlias.objects.select_for_update().filter(model=model, name=alias).first()
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
