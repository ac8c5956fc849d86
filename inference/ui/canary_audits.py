"""Canary audits in the browser: asked for from a privately fine-tuned version's guarantee, followed
on their own page, read there (exposures of the base, the private and the non-private run, the bound)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from inference import selectors
from inference.models import ModelVersion, Task
from inference.services import canary_audits
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, htmx_progress

ARMS = (("base", "Before fine-tuning"), ("private", "Private run"), ("non_private", "Without privacy"))


def canary_section(*, actor: Actor, version: ModelVersion) -> dict[str, Any]:
    """What the model page's privacy guarantee shows of canary audits for `version`."""
    if version.task != Task.GENERATION or not version.privacy or not actor.can(Cap.REPORT_READ):
        return {}
    return {"canary_audits": selectors.canary_audit_list(actor=actor, version=version)[:5],
            "can_audit": actor.can(Cap.MODEL_REGISTER), "canary_defaults": canary_audits.DEFAULTS}


def _number(request: HttpRequest, name: str) -> int | None:
    raw = request.POST.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise PortalError(_('%(value)s must be a whole number.') % {"value": name.capitalize()}) from None


@capability_required(Cap.MODEL_REGISTER, gettext_lazy("audit fine-tuned versions"))
@require_POST
def canary_audit_create(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        found = selectors.version_get(actor=actor, name=name, version=version)
        audit = canary_audits.canary_audit_create(
            actor=actor, version=found, canaries=_number(request, "canaries"),
            insertions=_number(request, "insertions"), references=_number(request, "references"),
            compare=request.POST.get("compare") == "on")
        messages.success(request, _("Canary audit #%(number)s is running on the generation worker: the fine-tuning "
                                    "is repeated with the canaries inserted, then each canary's exposure is "
                                    "measured.") % {"number": audit.pk})
        return redirect("canary-audit", pk=audit.pk)
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect(f"/models/{name}/?v={version}#privacy-guarantee")


def _context(request: HttpRequest, audit: Any) -> dict[str, Any]:
    actor = request.actor  # type: ignore[attr-defined]
    running = audit.status in (JobStatus.PENDING, JobStatus.RUNNING)
    context: dict[str, Any] = {"audit": audit, "running": running,
                               "can_cancel": running and actor.can(Cap.MODEL_REGISTER)}
    found = audit.result if audit.status == JobStatus.DONE else None
    if found:
        context["summary"] = canary_audits.summary(found)
        context["arms"] = [(label, found[key]) for key, label in ARMS if key in found]
        rows = []
        for i, canary in enumerate(found["private"]["canaries"]):
            rows.append({"secret": canary["secret"],
                         "cells": [found[key]["canaries"][i] for key, _ in ARMS if key in found]})
        context["canary_rows"] = rows
    return context


@capability_required(Cap.REPORT_READ, gettext_lazy("read canary audits"))
def canary_audit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        audit = selectors.canary_audit_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": _("canary audit %(number)s") % {"number": pk}}, status=404)
    context = _context(request, audit)
    polled = htmx_progress(request, running=context["running"], template="inference/_canary_progress.html",
                           context=context)
    return polled or render(request, "inference/canary_audit.html", context)


@capability_required(Cap.MODEL_REGISTER, gettext_lazy("cancel canary audits"))
@require_POST
def canary_audit_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        canary_audits.canary_audit_cancel(actor=actor, audit=selectors.canary_audit_get(actor=actor, pk=pk))
        messages.success(request, _("Cancelling: the audit stops at its next step; what its private run did not "
                                    "spend is released."))
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect("canary-audit", pk=pk)
