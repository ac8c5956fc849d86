from __future__ import annotations

import json

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from audit.console.selectors import entry_get_for_actor, entry_list_for_actor
from audit.log import selectors as log
from audit.log.exceptions import AuditError, ProofUnavailable
from audit.log.exports import public_key_pem
from audit.log.models import VerificationRun
from audit.log.services import checkpoint_create
from audit.log.signing import key_id, load_public_key
from audit.log.tasks import log_verify_task
from audit.log.verifier import verify_inclusion_document
from portal.accounts.roles import Cap
from portal.web.access import capability_required

PAGE = 50


class SearchForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, label=gettext_lazy("Actor"))
    action = forms.CharField(required=False, max_length=64, label=gettext_lazy("Action"),
                             help_text=gettext_lazy("prefix, e.g. token."))
    target_type = forms.CharField(required=False, max_length=64, label=gettext_lazy("Target type"))
    target_id = forms.CharField(required=False, max_length=64, label=gettext_lazy("Target id"))
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                label=gettext_lazy("Since"))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                label=gettext_lazy("Until"))
    before = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)


@capability_required(Cap.AUDIT_READ, gettext_lazy("read the audit log"))
def audit_log(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = SearchForm(request.GET or None)
    entries = []
    next_before = None
    if form.is_valid() or not request.GET:
        filters = {k: v for k, v in (form.cleaned_data if request.GET else {}).items() if v not in (None, "")}
        before = filters.pop("before", None)
        query = entry_list_for_actor(viewer=actor, filters=filters)
        if before is not None:
            query = query.filter(index__lt=before)
        entries = list(query[:PAGE])
        next_before = entries[-1].index if len(entries) == PAGE else None
    params = request.GET.copy()
    params.pop("before", None)
    context = {
        "form": form,
        "entries": entries,
        "next_before": next_before,
        "params": params.urlencode(),
        "verification": VerificationRun.objects.first(),
        "checkpoint": log.checkpoint_latest(),
        "log_size": log.log_size(),
        "key_id": key_id(load_public_key(public_key_pem())),
    }
    return render(request, "audit/log.html", context)


@capability_required(Cap.AUDIT_READ, gettext_lazy("read the audit log"))
def audit_entry(request: HttpRequest, index: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        entry = entry_get_for_actor(actor=actor, index=index)
    except AuditError:
        return render(request, "audit/missing.html", {"index": index}, status=404)
    proof, proof_error, verified = None, "", False
    try:
        proof = log.inclusion_document(entry=entry)
        verified = verify_inclusion_document(proof, load_public_key(public_key_pem())) is None
    except ProofUnavailable as exc:
        proof_error = str(exc)
    context = {
        "entry": entry,
        "payload": json.dumps(entry.payload, indent=2, ensure_ascii=False) if entry.payload is not None else None,
        "proof": proof,
        "proof_json": json.dumps(proof, indent=2) if proof else "",
        "proof_error": proof_error,
        "verified": verified,
    }
    return render(request, "audit/entry.html", context)


@capability_required(Cap.AUDIT_READ, gettext_lazy("read the audit log"))
@require_POST
def audit_verify_now(request: HttpRequest) -> HttpResponse:
    log_verify_task.delay()
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "audit/_verification.html", {"verification": VerificationRun.objects.first(), "queued": True})
    return redirect("audit-log")


@capability_required(Cap.AUDIT_READ, gettext_lazy("read the audit log"))
def audit_verification_status(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/_verification.html", {"verification": VerificationRun.objects.first()})


@capability_required(Cap.AUDIT_READ, gettext_lazy("read the audit log"))
@require_POST
def audit_checkpoint_now(request: HttpRequest) -> HttpResponse:
    checkpoint_create(force=True)
    return redirect("audit-log")




@capability_required(Cap.ORG_MANAGE, gettext_lazy("manage redaction rules"))
def redaction_rules(request: HttpRequest) -> HttpResponse:
    """The organisation's own redaction patterns: list, add, try on a sample text, remove; audited."""
    from django.contrib import messages

    from audit.log.models import RedactionRule
    from audit.log.services import redaction_preview, redaction_rule_create, redaction_rule_delete
    from portal.platform.exceptions import PortalError

    actor = request.actor  # type: ignore[attr-defined]
    organization_id = actor.organization.pk
    context: dict[str, object] = {"sample": "", "label": "", "pattern": ""}
    if request.method == "POST":
        action = request.POST.get("action", "")
        label, pattern = request.POST.get("label", "").strip(), request.POST.get("pattern", "")
        try:
            if action == "add":
                redaction_rule_create(actor=actor.audit_actor, organization_id=organization_id, label=label,
                                      pattern=pattern)
                messages.success(request, _("Redaction rule %(label)s added: entries from now on are redacted with "
                                            "it.") % {"label": label})
                return redirect("audit-redaction")
            if action == "delete":
                redaction_rule_delete(actor=actor.audit_actor, organization_id=organization_id,
                                      rule_id=int(request.POST.get("rule") or 0))
                messages.success(request, _("Redaction rule removed; entries already stored stay as they are."))
                return redirect("audit-redaction")
            if action == "try":
                sample = request.POST.get("sample", "")[:10_000]
                context.update(sample=sample, label=label, pattern=pattern, tried=True,
                               redacted=redaction_preview(organization_id=organization_id, text=sample,
                                                          label=label or "CANDIDATE", pattern=pattern))
        except PortalError as exc:
            context.update(error=exc.message, label=label, pattern=pattern)
    context["rules"] = RedactionRule.objects.filter(organization_id=organization_id).order_by("label")
    return render(request, "audit/redaction.html", context, status=400 if context.get("error") else 200)
