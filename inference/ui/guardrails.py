"""Guardrail policies in the browser: the organisation's, and a model's own; who may change them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inference.models import Completion, GuardAction, GuardrailPolicy
from inference.services import guardrails
from portal.accounts.roles import Cap
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, forbidden

RECENT = 20


def _values(post: Any) -> dict[str, Any]:
    """The form's fields as the service takes them (the service checks them, and names what is wrong)."""
    def number(name: str, default: float) -> float:
        try:
            return float(post.get(name) or default)
        except ValueError:
            return -1.0  # refused by the service, naming the field
    limit = (post.get("max_output_tokens") or "").strip()
    return {
        "mask_pii": post.get("mask_pii") == "on",
        "moderation_model": (post.get("moderation_model") or "moderation").strip()[:200],
        "categories": [c.strip() for c in (post.get("categories") or "").split(",") if c.strip()][:32],
        "input_action": post.get("input_action") if post.get("input_action") in GuardAction.values else "off",
        "input_threshold": number("input_threshold", 0.5),
        "output_action": post.get("output_action") if post.get("output_action") in GuardAction.values else "off",
        "output_threshold": number("output_threshold", 0.5),
        "blocked_patterns": [line.strip() for line in (post.get("blocked_patterns") or "").splitlines()
                             if line.strip()][:guardrails.MAX_PATTERNS + 1],
        "max_output_tokens": int(limit) if limit.isdigit() and 0 < int(limit) <= 1_000_000 else None,
    }


@capability_required(Cap.MODEL_READ, gettext_lazy("see the guardrail policies"))
def guardrail_policy(request: HttpRequest, name: str | None = None) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        own, model = guardrails.policy_get(actor=actor, model_name=name)
    except PortalError as exc:
        return render(request, "inference/missing.html", {"name": name, "why": exc.message}, status=404)
    may_edit = actor.can(Cap.MODEL_REVIEW if model else Cap.ORG_MANAGE)
    here = redirect("model-guardrails", model.name) if model else redirect("guardrails")
    error, details, form = "", {}, None
    if request.method == "POST":
        if not may_edit:
            return forbidden(request, gettext_lazy("change this guardrail policy"))
        try:
            if request.POST.get("action") == "remove":
                guardrails.policy_remove(actor=actor, model_name=name)
                messages.success(request, _("The model's own policy is removed: it follows the organisation's.")
                                 if model else _("The organisation's policy is removed: prompts and outputs are no "
                                                 "longer checked, except for models with a policy of their own."))
                return here
            form = _values(request.POST)
            policy = guardrails.policy_set(actor=actor, model_name=name, values=form)
            messages.success(request, _("Policy saved (revision %(revision)s); completions admitted from now on "
                                        "run under it.") % {"revision": policy.revision})
            return here
        except PortalError as exc:
            error, details = exc.message, exc.details
    organisation = GuardrailPolicy.objects.filter(organization=actor.organization, model__isnull=True).first()
    effective = own if model is None else (own or organisation)
    shown = own or (organisation if model is not None else None)
    recent = Completion.objects.filter(organization=actor.organization).exclude(guard_outcome="")
    if model is not None:
        recent = recent.filter(model_version__model=model)
    overrides = GuardrailPolicy.objects.filter(organization=actor.organization, model__isnull=False).select_related("model")
    form = form or guardrails.policy_fields(shown)
    return render(request, "inference/guardrails.html", {
        "model": model, "own": own, "organisation": organisation, "effective": effective,
        "form": form, "patterns_text": "\n".join(form["blocked_patterns"]), "may_edit": may_edit,
        "error": error, "details": details, "actions": GuardAction.values, "overrides": overrides,
        "recent": recent.select_related("model_version__model", "created_by").order_by("-created_at")[:RECENT],
    }, status=400 if error else 200)
