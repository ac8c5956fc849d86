"""Guardrail policies, the web side: read, set and removed (audited), and the snapshot a completion
takes with it to the worker at admission (so it runs under the revision it was admitted under).

The checks themselves run on the generation worker, beside the model (guard_runs.py): masking PII
in the prompt, blocked patterns, the moderation model on the prompt and on each sentence of the
output, and the output's length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext

from audit.log import redaction
from audit.log.services import audit_record
from inference import selectors
from inference.exceptions import GuardUnavailable, InvalidGuardrailPolicy, ModelNotFound
from inference.models import GuardAction, GuardrailPolicy, RegisteredModel, Task
from portal.accounts.actor import Actor
from portal.platform.exceptions import NotFound

NEUTRAL_LABEL = "neither"  # a moderation model's label for text in none of its categories
MAX_PATTERNS = 50
EDITABLE = ("mask_pii", "moderation_model", "categories", "input_action", "input_threshold", "output_action",
            "output_threshold", "blocked_patterns", "max_output_tokens")


@dataclass(frozen=True)
class PolicySnapshot:
    """What the worker applies to one completion; also what its record and receipt name."""

    id: int | None = None  # None: no policy (nothing is checked)
    scope: str = "none"  # "organisation", "model" or "none"
    revision: int = 0
    mask_pii: bool = False
    input_action: str = GuardAction.OFF
    input_threshold: float = 0.5
    output_action: str = GuardAction.OFF
    output_threshold: float = 0.5
    categories: list[str] = field(default_factory=list)
    blocked_patterns: list[str] = field(default_factory=list)
    max_output_tokens: int | None = None
    moderation_version_id: int | None = None  # resolved at admission: the worker loads exactly it
    moderation_model: str = ""  # name@version, for the record

    @property
    def checks_output(self) -> bool:
        return self.output_action != GuardAction.OFF or bool(self.blocked_patterns)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The policy as a completion's record names it (its id and revision, and what it checks)."""
        return {"policy": self.id, "scope": self.scope, "revision": self.revision, "mask_pii": self.mask_pii,
                "input": {"action": self.input_action, "threshold": self.input_threshold},
                "output": {"action": self.output_action, "threshold": self.output_threshold},
                "categories": self.categories, "blocked_patterns": len(self.blocked_patterns),
                "max_output_tokens": self.max_output_tokens, "moderation_model": self.moderation_model}


def policy_snapshot(*, actor: Actor, model: RegisteredModel) -> PolicySnapshot:
    """The policy a completion of `model` runs under, with its moderation model resolved now.

    Raises:
        ServiceUnavailable (503): the policy moderates with a model that is not in service; nothing
            is generated unchecked (an admin must fix the policy or serve the model).
    """
    policy = selectors.guardrail_policy_for(organization_id=actor.organization.pk, model_id=model.pk)
    if policy is None:
        return PolicySnapshot()
    moderation_id, moderation_name = None, ""
    if policy.input_action != GuardAction.OFF or policy.output_action != GuardAction.OFF:
        try:
            version = selectors.version_resolve_for_serving(actor=actor, ref=policy.moderation_model)
        except ModelNotFound:
            version = None
        if version is None or not version.is_servable:
            raise GuardUnavailable(
                gettext("This model's guardrail policy checks text with the moderation model '%(moderation_model)s', which is not in service; nothing was generated. An admin must serve that model or change the policy.") % {"moderation_model": policy.moderation_model})
        moderation_id, moderation_name = version.pk, f"{version.model.name}@{version.version}"
    return PolicySnapshot(
        id=policy.pk, scope="model" if policy.model_id else "organisation", revision=policy.revision,
        mask_pii=policy.mask_pii, input_action=policy.input_action, input_threshold=policy.input_threshold,
        output_action=policy.output_action, output_threshold=policy.output_threshold,
        categories=list(policy.categories), blocked_patterns=list(policy.blocked_patterns),
        max_output_tokens=policy.max_output_tokens, moderation_version_id=moderation_id,
        moderation_model=moderation_name,
    )


def policy_get(*, actor: Actor, model_name: str | None = None) -> tuple[GuardrailPolicy | None, RegisteredModel | None]:
    """The organisation's policy (model_name None), or a model's own (None when it follows the
    organisation's), with the model.

    Raises:
        ModelNotFound (404): no such model visible to the actor.
    """
    model = selectors.model_get(actor=actor, name=model_name) if model_name else None
    policy = GuardrailPolicy.objects.filter(organization=actor.organization, model=model).first()
    return policy, model


def _clean(values: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Checks a policy's fields together; every refusal names its field."""
    errors: dict[str, list[str]] = {}
    patterns = values.get("blocked_patterns") or []
    if len(patterns) > MAX_PATTERNS:
        errors["blocked_patterns"] = [f"At most {MAX_PATTERNS} patterns."]
    for number, pattern in enumerate(patterns):
        try:
            redaction.compile_rule(pattern)
        except ValueError as exc:
            errors.setdefault("blocked_patterns", []).append(f"Pattern {number + 1}: {exc}.")
    for name in ("input_threshold", "output_threshold"):
        if not 0.0 < float(values[name]) <= 1.0:
            errors[name] = ["A threshold is a score above 0 and at most 1."]
    if values["input_action"] != GuardAction.OFF or values["output_action"] != GuardAction.OFF:
        ref = values["moderation_model"]
        try:
            version = selectors.version_resolve_for_serving(actor=actor, ref=ref)
        except ModelNotFound as exc:
            errors["moderation_model"] = [str(exc)]
        else:
            labels = [label for label in version.labels if label != NEUTRAL_LABEL]
            if version.task != Task.TEXT or NEUTRAL_LABEL not in version.labels or not labels:
                errors["moderation_model"] = [f"'{ref}' is not a moderation model: one is a text classifier with a "
                                              f"label '{NEUTRAL_LABEL}' beside the categories it scores."]
            else:
                unknown = sorted(set(values["categories"]) - set(labels))
                if unknown:
                    errors["categories"] = [f"'{ref}' does not score {', '.join(unknown)}; it scores "
                                            f"{', '.join(labels)}."]
    if errors:
        first = next(iter(errors.values()))[0]
        raise InvalidGuardrailPolicy(gettext('The policy cannot be saved: %(lower)s%(value)s') % {"lower": first[:1].lower(), "value": first[1:]}, details=errors)
    return values


def policy_defaults() -> dict[str, Any]:
    """The fields of a new policy before the caller's values: nothing is checked."""
    return {name: GuardrailPolicy._meta.get_field(name).get_default()  # type: ignore[union-attr]
            for name in EDITABLE}


def policy_fields(policy: GuardrailPolicy | None) -> dict[str, Any]:
    """The editable fields of a policy (a new one's defaults for None)."""
    if policy is None:
        return policy_defaults()
    return _fields(policy)


def _fields(policy: GuardrailPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in EDITABLE}


def policy_set(*, actor: Actor, model_name: str | None = None, values: dict[str, Any]) -> GuardrailPolicy:
    """Creates or replaces the organisation's policy, or a model's own; audited with what changed.

    Raises:
        InvalidGuardrailPolicy (400): a field that cannot be run (a pattern RE2 cannot bound, a
            threshold out of range, a moderation model that is not one or not in service).
        ModelNotFound (404): no such model.
    """
    existing, model = policy_get(actor=actor, model_name=model_name)
    defaults = _fields(existing) if existing else policy_defaults()
    values = _clean({**defaults, **values}, actor)
    with transaction.atomic():
        if existing is None:
            try:
                with transaction.atomic():
                    policy = GuardrailPolicy.objects.create(organization=actor.organization, model=model,
                                                            updated_by=actor.user, **values)
            except IntegrityError:  # another request made it first: this one replaces it
                policy = GuardrailPolicy.objects.get(organization=actor.organization, model=model)
                existing = policy
        if existing is not None:
            GuardrailPolicy.objects.filter(pk=existing.pk).update(revision=F("revision") + 1, updated_by=actor.user,
                                                                  **values)
            policy = GuardrailPolicy.objects.get(pk=existing.pk)
        changed = {name: {"from": defaults[name], "to": values[name]} for name in EDITABLE
                   if defaults[name] != values[name]}
        audit_record(action="guardrail.policy_set", actor=actor.audit_actor, organization_id=actor.organization.pk,
                     target_type="inference.GuardrailPolicy", target_id=policy.pk,
                     payload={"scope": "model" if model else "organisation", "model": model.name if model else None,
                              "revision": policy.revision, "policy": _fields(policy), "changed": changed})
    return policy


def policy_remove(*, actor: Actor, model_name: str | None = None) -> None:
    """Removes the organisation's policy, or a model's own (which then follows the organisation's); audited.

    Raises:
        NotFound (404): there is no such policy.
    """
    with transaction.atomic():
        existing, model = policy_get(actor=actor, model_name=model_name)
        if existing is None:
            raise NotFound("There is no such policy to remove." if model is None else
                           f"The model '{model.name}' has no policy of its own; it follows the organisation's.")
        audit_record(action="guardrail.policy_removed", actor=actor.audit_actor, organization_id=actor.organization.pk,
                     target_type="inference.GuardrailPolicy", target_id=existing.pk,
                     payload={"scope": "model" if model else "organisation", "model": model.name if model else None,
                              "revision": existing.revision, "policy": _fields(existing)})
        existing.delete()
