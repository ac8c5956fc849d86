"""Compression from the model page, and the organisation's compression policy (admins)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from inference import selectors
from inference.ml import compression
from inference.models import ModelVersion, Task
from inference.services import compressions
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, htmx_progress


def compression_section(*, actor: Actor, version: ModelVersion) -> dict[str, Any]:
    """What the model page's compression section shows for `version`."""
    context: dict[str, Any] = {
        "compressions": selectors.compression_list(actor=actor, version=version)[:5],
        "can_compress": actor.can(Cap.MODEL_REGISTER) and version.task in (Task.TEXT, Task.GENERATION)
        and version.framework == "transformers",
        "compression_methods": [(name, _(text)) for name, text in compression.METHODS.items()
                                if version.task in compression.METHOD_TASKS[name]],
    }
    measured = (version.metrics or {}).get("compression")
    if measured:
        context["compression_headline"] = compressions.headline(measured)
        context["compression_beyond"] = compressions.limits_exceeded(
            measured, compressions.compression_policy_for(actor.organization))
    return context


@capability_required(Cap.MODEL_REGISTER, gettext_lazy("compress model versions"))
@require_POST
def compression_create(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    upload = request.FILES.get("file")
    keep = [part.strip() for part in request.POST.get("keep_float", "").split(",") if part.strip()]
    try:
        found = selectors.version_get(actor=actor, name=name, version=version)
        dataset = request.POST.get("dataset") or ""
        if dataset == "upload" and upload is None:
            raise PortalError(_('Choose the file of held-out data to measure the compression on.'))
        job = compressions.compression_create(
            actor=actor, version=found, method=request.POST.get("method") or compression.METHOD, keep_float=keep,
            dataset=dataset, upload=upload,  # type: ignore[arg-type]
            upload_name=getattr(upload, "name", "") or "", label_column=request.POST.get("label_column") or "label")
        messages.success(request, _("Compression #%(number)s is running on a worker: the compressed version "
                                    "appears as a new draft when its loss is measured.") % {"number": job.pk})
        return redirect("compression", pk=job.pk)
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect(f"/models/{name}/?v={version}#compression")


@capability_required(Cap.MODEL_READ, gettext_lazy("read compressions"))
def compression_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        job = selectors.compression_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": _("compression %(number)s") % {"number": pk}}, status=404)
    running = job.status in (JobStatus.PENDING, JobStatus.RUNNING)
    context = {"job": job, "running": running, "headline": compressions.headline(job.result) if job.result else ""}
    polled = htmx_progress(request, running=running, template="inference/_compression_progress.html", context=context)
    return polled or render(request, "inference/compression.html", context)


@capability_required(Cap.MODEL_READ, gettext_lazy("read the compression policy"))
def compression_policy(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    if request.method == "POST":
        try:
            values = {}
            for name in compressions.POLICY_LIMITS:
                raw = request.POST.get(name, "").strip()
                if raw:
                    try:
                        values[name] = float(raw)
                    except ValueError:
                        raise PortalError(_('%(value)s must be a number.') % {"value": name.replace('_', ' ').capitalize()}) from None
            compressions.compression_policy_update(actor=actor, **values)
            messages.success(request, _("Compression policy saved."))
            return redirect("compression-policy")
        except PortalError as exc:
            messages.error(request, exc.message)
    return render(request, "inference/compression_policy.html", {
        "policy": compressions.compression_policy_for(actor.organization),
        "can_manage": actor.can(Cap.ORG_MANAGE),
    })
