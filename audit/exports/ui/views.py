"""The browser pages of compliance exports; they call the same services as the REST API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy

from audit.exports import selectors, services
from audit.exports.document import area_said, issue_said
from audit.exports.downloads import download_response
from audit.exports.models import ComplianceExport
from audit.log.exports import public_key_pem
from audit.log.signing import key_id, load_public_key
from inference import selectors as inference_selectors
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.platform.said import said
from portal.web.access import capability_required, forbidden, htmx_progress


class ExportForm(forms.Form):
    period_start = forms.DateField(widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
                                   label=gettext_lazy("Period start"),
                                   help_text=gettext_lazy("serving statistics from this day"))
    period_end = forms.DateField(widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
                                 label=gettext_lazy("Period end"), help_text=gettext_lazy("to this day, inclusive"))


@capability_required(Cap.REPORT_READ, gettext_lazy("read compliance exports"))
def version_exports(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        found = inference_selectors.version_get(actor=actor, name=name, version=version)
    except PortalError:
        return render(request, "inference/missing.html", {"name": name}, status=404)
    start, end = services.default_period()
    form = ExportForm(request.POST or None, initial={"period_start": start, "period_end": end})
    status = 200
    if request.method == "POST":
        if not actor.can(Cap.EXPORT_CREATE):
            return forbidden(request, gettext_lazy("generate compliance exports"))
        if form.is_valid():
            try:
                export = services.export_create(actor=actor, version=found,
                                                period_start=form.cleaned_data["period_start"],
                                                period_end=form.cleaned_data["period_end"])
                return redirect("export-detail", pk=export.pk)
            except PortalError as exc:
                form.add_error(None, exc.message)
        status = 400
    context = {"version": found, "form": form, "can_create": actor.can(Cap.EXPORT_CREATE),
               "exports": selectors.export_list(actor=actor, version=found)}
    return render(request, "exports/version_exports.html", context, status=status)


@capability_required(Cap.REPORT_READ, gettext_lazy("read compliance exports"))
def export_list(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    versions = inference_selectors.version_list_visible(actor=actor).select_related("model").order_by(
        "model__name", "-version")
    return render(request, "exports/list.html", {"exports": selectors.export_list(actor=actor)[:200],
                                                 "versions": versions, "can_create": actor.can(Cap.EXPORT_CREATE)})


@capability_required(Cap.REPORT_READ, gettext_lazy("read compliance exports"))
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        export = selectors.export_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "exports/missing.html", {"pk": pk}, status=404)
    context: dict[str, Any] = {"export": export, "running": export.status in (JobStatus.PENDING, JobStatus.RUNNING)}
    polled = htmx_progress(request, running=context["running"], template="exports/_progress.html", context=context)
    if polled is not None:
        return polled
    if export.status == JobStatus.DONE:
        context.update(_done_context(export))
    return render(request, "exports/export.html", context)


def _done_context(export: ComplianceExport) -> dict[str, Any]:
    pem = public_key_pem()
    return {
        "annex": _said_rows(export.mapping["eu_ai_act_annex_iv"]), "nist": _said_rows(export.mapping["nist_ai_rmf"]),
        "issues": [{**issue, "area": area_said(issue["area"]), "message": issue_said(issue)} for issue in export.issues],
        "key_id": key_id(load_public_key(pem)),
        "high": sum(1 for i in export.issues if i["severity"] == "high"),
        "stem": f"{export.model_version.model.name}-v{export.model_version.version}-export-{export.number}",
    }


def _said_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored mapping (English, as in evidence.json) in the reader's language, values kept."""
    return [{**row, "title": said(row["title"]), "evidence": [said(e) for e in row["evidence"]],
             "missing": [said(m) for m in row["missing"]]} for row in rows]


@capability_required(Cap.REPORT_READ, gettext_lazy("read compliance exports"))
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The bundle, or one file of it (?file=report.pdf), for the signed-in member."""
    actor = request.actor  # type: ignore[attr-defined]
    try:
        export = selectors.export_get(actor=actor, pk=pk)
        return download_response(export, request.GET.get("file", ""))
    except PortalError as exc:
        return render(request, "exports/missing.html", {"pk": pk, "message": exc.message},
                      status=exc.status_code)
