"""A draft's model card edited in place, and a draft deleted: each change in the audit log.

A version's card is frozen once it is submitted (the reviewer approves what they read); until
then its owner completes it here instead of uploading the archive again, and may delete a draft
that should never be reviewed.
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext

from audit.log.services import audit_record
from inference.exceptions import IllegalTransition, IncompleteCard
from inference.models import ModelTransition, ModelVersion, RegisteredModel, VersionStatus
from inference.services.registry import CARD_FIELDS
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.platform.locks import for_update

CARD_MAX_CHARS = 10_000
EDITABLE = (VersionStatus.DRAFT, VersionStatus.REJECTED)  # a rejected version is completed, then submitted again


def _editable(version: ModelVersion, what: str, states: tuple[str, ...] = EDITABLE) -> ModelVersion:
    locked = for_update(ModelVersion.objects.select_related("model")).get(pk=version.pk)
    if locked.status not in states:
        allowed = " or ".join(str(s) for s in states)
        raise IllegalTransition(gettext('%(locked)s is %(status)s: only a %(allowed)s version can %(what)s; register a new version to change it.') % {"locked": locked, "status": locked.status, "allowed": allowed, "what": what})
    return locked


def card_history(version: ModelVersion) -> list[dict[str, Any]]:
    """The card's edits, oldest first, from the audit log: when, who, and each field from and to."""
    from audit.log.selectors import entries_for_targets

    entries = entries_for_targets(organization_id=version.model.organization_id,
                                  targets=[("inference.ModelVersion", [str(version.pk)])])
    history = []
    for e in entries:
        if e.action == "model.card_edited":
            changes = (e.payload or {}).get("changes", {})
            history.append({"at": e.created_at, "by": e.actor_label, "index": e.index, "changes": changes,
                            "fields": [f.replace("_", " ") for f in changes]})
    return history


@transaction.atomic
def model_card_edit(*, actor: Actor, version: ModelVersion, changes: dict[str, Any]) -> ModelVersion:
    """Sets the given card fields of a draft (the others stay); records what changed, from and to.

    Raises:
        IncompleteCard (400): an unknown field, or a value that is not text of at most CARD_MAX_CHARS.
        IllegalTransition (409): the version is neither a draft nor rejected (a submitted card is what the
            reviewer reads).
    """
    actor.require(Cap.MODEL_REGISTER, "edit model cards")
    if not isinstance(changes, dict) or not changes:
        raise IncompleteCard(gettext('Send the card fields to change, e.g. {"card": {"limitations": "..."}}.'))
    unknown = sorted(set(changes) - set(CARD_FIELDS))
    if unknown:
        raise IncompleteCard(gettext('Unknown model card fields: %(join)s.') % {"join": ', '.join(unknown)}, details={"allowed": CARD_FIELDS})
    for field, value in changes.items():
        if not isinstance(value, str) or len(value) > CARD_MAX_CHARS:
            raise IncompleteCard(gettext("The card's %(replace)s must be text of at most %(CARD_MAX_CHARS)s characters.") % {"replace": field.replace('_', ' '), "CARD_MAX_CHARS": CARD_MAX_CHARS}, details={"field": field})
    from inference.services.registry import card_languages_check

    card_languages_check(changes.get("languages"))
    locked = _editable(version, "have its card edited")
    changed = {f: {"from": locked.card.get(f, ""), "to": v.strip()} for f, v in changes.items()
               if locked.card.get(f, "") != v.strip()}
    if changed:
        locked.card = {**locked.card, **{f: c["to"] for f, c in changed.items()}}
        locked.save(update_fields=["card"])
        audit_record(
            action="model.card_edited", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.ModelVersion", target_id=locked.pk,
            payload={"model": locked.model.name, "version": locked.version, "changes": changed},
        )
    return locked


@transaction.atomic
def model_version_delete(*, actor: Actor, version: ModelVersion) -> None:
    """Deletes a draft and its artifact; the model goes too when it has no version left.

    Raises:
        IllegalTransition (409): the version is not a draft, or work refers to it (a bias report, an
            export, an explanation, a fine-tuning run); the log keeps what was done either way.
    """
    actor.require(Cap.MODEL_REGISTER, "delete draft versions")
    locked = _editable(version, "be deleted", (VersionStatus.DRAFT,))
    model, artifact = locked.model, locked.artifact
    payload = {"model": model.name, "version": locked.version, "artifact_sha256": locked.artifact_sha256}
    try:
        with transaction.atomic():
            ModelTransition.objects.filter(version=locked).delete()
            locked.delete()
    except ProtectedError:
        raise IllegalTransition(gettext('%(locked)s cannot be deleted: reports, evaluations, exports, explanations or a fine-tuning run refer to it. It stays a draft that nobody can serve.') % {"locked": locked}) from None
    audit_record(action="model.draft_deleted", actor=actor.audit_actor, organization_id=actor.organization.pk,
                 target_type="inference.ModelVersion", target_id=version.pk, payload=payload)
    if not ModelVersion.objects.filter(model=model).exists():
        try:
            with transaction.atomic():
                RegisteredModel.objects.filter(pk=model.pk).delete()
        except ProtectedError:
            pass  # a training dataset still names it: the empty model stays
    transaction.on_commit(lambda: default_storage.delete(artifact))
