"""The browser pages of models and serving; they call the same services as the REST API."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from inference import charts, selectors
from inference.evidence import version_evidence
from inference.models import BatchJob, ModelVersion, Task, UsageDaily, VersionStatus
from inference.services import cards, jobs, predictions, registry, uploads
from inference.services.usage import today
from inference.ui.canary_audits import canary_section
from inference.ui.completion_explanations import spans_of
from inference.ui.compressions import compression_section
from inference.ui.explanations import card_section
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.platform.said import said
from portal.templatetags.steward import TASKS
from portal.web.access import capability_required, forbidden, member_required


@member_required
def model_list(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    return render(request, "inference/model_list.html", {"models": selectors.model_list(actor=actor)})


def _card_value(version: Any, field: str) -> str:
    """A card field as the model page shows it: languages by name ("English (en)")."""
    value = str(version.card.get(field, "") or "")
    if field == "languages" and value:
        from inference import languages

        codes = languages.supported(version.card)
        return ", ".join(f"{languages.name(code)} ({code})" for code in codes) if codes else value
    return value


def _card_field(name: str, **kwargs: Any) -> forms.CharField:
    return forms.CharField(required=False, label=registry.CARD_LABELS[name], **kwargs)


class RegisterForm(forms.Form):
    name = forms.SlugField(max_length=60, label=gettext_lazy("Name"),
                           help_text=gettext_lazy("lower-case letters, digits and dashes"))
    task = forms.ChoiceField(label=gettext_lazy("Task"), choices=[(t.value, TASKS[t.value]) for t in Task])
    archive = forms.FileField(label=gettext_lazy("Archive"), help_text=gettext_lazy(
        ".zip or .tar.gz: a Hugging Face folder with safetensors weights, or model.onnx + schema.json for a "
        "tabular model; or one .gguf file for a generative model"))
    description = forms.CharField(required=False, label=gettext_lazy("Description"),
                                  widget=forms.Textarea(attrs={"rows": 2}))
    intended_use = _card_field("intended_use", widget=forms.Textarea(attrs={"rows": 2}))
    out_of_scope_uses = _card_field("out_of_scope_uses", widget=forms.Textarea(attrs={"rows": 2}))
    training_data = _card_field("training_data", widget=forms.Textarea(attrs={"rows": 2}))
    evaluation_data = _card_field("evaluation_data", widget=forms.Textarea(attrs={"rows": 2}))
    metrics = _card_field("metrics", widget=forms.Textarea(attrs={"rows": 2}))
    limitations = _card_field("limitations", widget=forms.Textarea(attrs={"rows": 2}))
    ethical_considerations = _card_field("ethical_considerations", widget=forms.Textarea(attrs={"rows": 2}))
    owner = _card_field("owner")
    languages = _card_field("languages", max_length=200, help_text=gettext_lazy(
        "ISO 639-1 codes of the languages it supports, e.g. en, zh: inputs in other languages are flagged"))


@capability_required(Cap.MODEL_REGISTER, gettext_lazy("register models"))
def model_register(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = RegisterForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        card = {f: data[f] for f in registry.CARD_FIELDS}
        try:
            upload = uploads.model_upload_wait(uploads.model_upload_create(
                actor=actor, name=data["name"], task=data["task"], archive=data["archive"], card=card,
                description=data["description"],
            ))
        except PortalError as exc:
            form.add_error("archive", exc.message)
        else:
            if upload.status == JobStatus.FAILED:
                form.add_error("archive", said(upload.error))  # the worker's words, in the reader's language
            elif upload.version is not None:
                messages.success(request, _("Registered %(version)s as a draft. Submit it for review when its "
                                            "card is complete.") % {"version": upload.version})
                return redirect("model-detail", name=upload.version.model.name)
            else:
                messages.info(request, _("The archive for %(name)s is still being checked on a worker; it appears "
                                         "here as a draft version when the check passes.") % {"name": upload.name})
                return redirect("models")
    return render(request, "inference/model_register.html", {"form": form}, status=400 if form.errors else 200)


@member_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        model = selectors.model_get(actor=actor, name=name)
    except PortalError:
        return render(request, "inference/missing.html", {"name": name}, status=404)
    versions = list(model.versions.all())
    chosen = versions[0]
    wanted = request.GET.get("v", "")
    for version in versions:
        if str(version.version) == wanted:
            chosen = version
    aliases = {alias.name: alias.version.version for alias in model.aliases.all()}
    context = {
        "model": model,
        "versions": versions,
        "version": chosen,
        "aliases": aliases,
        "card_rows": [(registry.CARD_LABELS[f], _card_value(chosen, f)) for f in registry.CARD_FIELDS],
        "transitions": chosen.transitions.select_related("actor"),
        "can_review": actor.can(Cap.MODEL_REVIEW) and chosen.status == VersionStatus.SUBMITTED
        and chosen.submitted_by_id != actor.user.pk,
        "can_submit": actor.can(Cap.MODEL_REGISTER) and chosen.status in (VersionStatus.DRAFT, VersionStatus.REJECTED),
        "can_edit_card": actor.can(Cap.MODEL_REGISTER) and chosen.status in cards.EDITABLE,
        "can_try": chosen.status in selectors.TRIAL_STATES
        and (actor.can(Cap.MODEL_REGISTER) or actor.can(Cap.MODEL_REVIEW)),
        "try_ref": f"{model.name}@{chosen.version}",
        "evaluations": selectors.evaluation_list(actor=actor, version=chosen)[:5],
        "can_evaluate": actor.can(Cap.MODEL_REGISTER),
        "can_delete": actor.can(Cap.MODEL_REGISTER) and chosen.status == VersionStatus.DRAFT,
        "card_missing": registry.card_missing_sentence(registry.card_missing(chosen.card))
        if registry.card_missing(chosen.card) else "",
        "card_fields": [{"name": f, "label": registry.CARD_LABELS[f], "question": registry.CARD_QUESTIONS[f],
                         "value": chosen.card.get(f, "")} for f in registry.CARD_FIELDS],
        "card_history": cards.card_history(chosen),
        "can_alias": actor.can(Cap.MODEL_REGISTER) and chosen.status == VersionStatus.APPROVED,
        "can_retire": actor.can(Cap.MODEL_REVIEW) and chosen.status == VersionStatus.APPROVED,
        "self_submitted": chosen.submitted_by_id == actor.user.pk,
        "evidence": version_evidence(chosen) if actor.can(Cap.REPORT_READ) else [],
    }
    context["blocking"] = [e for e in context["evidence"] if e.blocks_approval]
    if chosen.task != Task.TABULAR:
        context["language_mismatches"] = selectors.language_mismatches(version=chosen)
        context["language_mismatch_total"] = sum(m["count"] for m in context["language_mismatches"])
    energy = selectors.model_energy_daily(model=model)
    if any(d["energy_wh"] for d in energy):
        context["energy_chart"] = charts.usage_columns(energy, key="energy_wh", unit="Wh", digits=3,
                                                       title=_("Energy of this model's served work per day (Wh)"))
        context["energy_total"] = sum(d["energy_wh"] for d in energy)
    if chosen.task == Task.GENERATION:
        context["completions"] = [_with_preview(c) for c in selectors.completion_list(actor=actor, version=chosen)[:10]]
        context["guard_policy"] = selectors.guardrail_policy_for(organization_id=actor.organization.pk, model_id=model.pk)
    context.update(card_section(actor=actor, version=chosen))
    context.update(compression_section(actor=actor, version=chosen))
    context.update(canary_section(actor=actor, version=chosen))
    return render(request, "inference/model_detail.html", context)


@member_required
@require_POST
def version_action(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    action = request.POST.get("action", "")
    try:
        found = selectors.version_get(actor=actor, name=name, version=version)
        if action == "alias":
            registry.alias_move(actor=actor, model=found.model, alias=request.POST.get("alias") or "production",
                                version=found)
            messages.success(request, _("%(alias)s now points at %(version)s.") % {
                "alias": request.POST.get("alias") or "production", "version": found})
        elif action == "card":
            changes = {f: request.POST[f"card-{f}"] for f in registry.CARD_FIELDS if f"card-{f}" in request.POST}
            cards.model_card_edit(actor=actor, version=found, changes=changes)
            messages.success(request, _("%(version)s: model card saved.") % {"version": found})
        elif action == "delete":
            if request.POST.get("confirm") != "yes":
                messages.error(request, _("Tick the box to confirm that the draft is to be deleted."))
            else:
                cards.model_version_delete(actor=actor, version=found)
                messages.success(request, _("%(version)s was deleted.") % {"version": found})
                return redirect("/models/" + (f"{name}/" if found.model.versions.exists() else ""))
        elif action in ("submit", "approve", "reject", "retire"):
            registry.model_version_transition(actor=actor, version=found, action=action,
                                              comment=request.POST.get("comment", ""))
            done = {"submit": _("%(version)s: submitted for review."), "approve": _("%(version)s: approved."),
                    "reject": _("%(version)s: rejected."), "retire": _("%(version)s: retired.")}[action]
            messages.success(request, done % {"version": found})
        else:
            messages.error(request, _("Unknown action."))
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect(f"/models/{name}/?v={version}")


def _feature_fields(version: ModelVersion) -> list[dict[str, Any]]:
    """The schema's features, each with the value the playground starts from: the version's typical
    row (median numbers, most frequent categories), or for versions registered before it was recorded,
    the mean and the first value."""
    typical = version.input_schema.get("typical") or {}
    fields = []
    for feature in version.input_schema.get("features", []):
        start = typical.get(feature["name"])
        if start is None:
            start = round(feature.get("mean", 0)) if feature["type"] == "number" else feature["values"][0]
        fields.append({**feature, "start": start})
    return fields


def _with_preview(completion: Any) -> Any:
    """The last message of a chat (or the prompt), redacted as stored, for a one-line listing."""
    prompt = completion.prompt
    if isinstance(prompt, list) and prompt:
        prompt = prompt[-1].get("content", "")
    completion.prompt_preview = prompt if isinstance(prompt, str) else ""
    return completion


@member_required
def completion_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        completion = selectors.completion_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": _("completion %(number)s") % {"number": pk}}, status=404)
    messages_ = completion.prompt if isinstance(completion.prompt, list) else None
    return render(request, "inference/completion.html", {
        "completion": completion, "messages": messages_, "prompt": completion.prompt if messages_ is None else "",
        "can_audit": actor.can(Cap.AUDIT_READ), "guard": completion.guard or None,
        "spans": spans_of(str(completion.choices[0].get("text", ""))) if completion.choices else [],
        "explanations": completion.explanations.all()[:10], "explain_budget": settings.EXPLAIN_DEFAULT_EVALS,
        "decisions": [_decision_row(d) for d in (completion.guard or {}).get("decisions", [])],
    })


# the words of a guardrail decision as inference/services/guard_runs.py records it
GUARD_STAGES = {"input": gettext_lazy("prompt"), "output": gettext_lazy("answer")}
GUARD_CHECKS = {"pii": gettext_lazy("personal data"), "moderation": gettext_lazy("moderation"),
                "pattern": gettext_lazy("blocked pattern"), "patterns": gettext_lazy("blocked patterns"),
                "max_output_tokens": gettext_lazy("output length")}
GUARD_DECISIONS = {"blocked": gettext_lazy("blocked"), "limited": gettext_lazy("limited"),
                   "masked": gettext_lazy("masked"), "passed": gettext_lazy("passed"),
                   "stopped": gettext_lazy("stopped"), "flagged": gettext_lazy("flagged"),
                   "checked": gettext_lazy("checked")}


def _decision_row(decision: dict[str, Any]) -> dict[str, str]:
    """A guardrail decision as a row of the completion's page: where, which check, what it did, why."""
    details = []
    if decision.get("masked"):
        details.append(_("masked %(labels)s") % {
            "labels": ", ".join(f"[{label}] x{n}" for label, n in decision["masked"].items())})
    if decision.get("scores"):
        details.append(_("scores %(scores)s") % {
            "scores": ", ".join(f"{c} {s:.3f}" for c, s in decision["scores"].items())})
    if decision.get("max_scores"):
        details.append(_("highest scores %(scores)s") % {
            "scores": ", ".join(f"{c} {s:.3f}" for c, s in decision["max_scores"].items())})
    if "threshold" in decision:
        details.append(_("threshold %(threshold)s") % {"threshold": decision["threshold"]})
    if decision.get("pattern"):
        details.append(_("blocked pattern %(pattern)s") % {"pattern": decision["pattern"]})
    if decision.get("sentences"):
        details.append(_("%(count)s sentence(s) checked") % {"count": decision["sentences"]})
    if decision.get("limit"):
        details.append(_("asked %(asked)s tokens, limited to %(limit)s") % {"asked": decision["asked"],
                                                                          "limit": decision["limit"]})
    if decision.get("sentence"):
        details.append(_("sentence withheld: “%(sentence)s”") % {"sentence": decision["sentence"]})
    where = str(GUARD_STAGES.get(decision.get("stage", ""), decision.get("stage", "")))
    if "choice" in decision:
        where += " " + _("(choice %(choice)s)") % {"choice": decision["choice"]}
    check = str(decision.get("check", ""))
    return {"stage": where, "check": str(GUARD_CHECKS.get(check, check.replace("_", " "))),
            "action": str(GUARD_DECISIONS.get(str(decision.get("action", "")), decision.get("action", ""))),
            "detail": "; ".join(details)}


@member_required
def playground(request: HttpRequest, name: str) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        version = selectors.version_resolve_for_serving(actor=actor, ref=name, trial=True)
    except PortalError as exc:
        return render(request, "inference/missing.html", {"name": name, "why": exc.message}, status=404)
    if version.task == Task.GENERATION:
        return render(request, "inference/chat.html", {
            "version": version, "can_predict": actor.can(Cap.MODEL_PREDICT), "ref": name,
            "trial": not version.is_servable, "max_tokens": settings.GENERATION_MAX_TOKENS,
        })
    return render(request, "inference/playground.html", {
        "version": version, "features": _feature_fields(version),
        "can_predict": actor.can(Cap.MODEL_PREDICT), "max_texts": EMBED_PLAYGROUND_TEXTS,
        "ref": name,  # the form posts to the version that was opened: a tried draft is the one that answers
        "trial": not version.is_servable,
    })


@capability_required(Cap.MODEL_PREDICT, gettext_lazy("call models"))
@require_POST
def playground_predict(request: HttpRequest, name: str) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    error, result, version, language = "", None, None, None
    try:
        version = selectors.version_resolve_for_serving(actor=actor, ref=name, trial=True)
        if version.task == Task.EMBEDDING:
            return _playground_embed(request, actor, version)
        if version.task == Task.TEXT:
            inputs: list[Any] = [request.POST.get("text", "")]
        else:
            row: dict[str, Any] = {}
            for feature in _feature_fields(version):
                raw = request.POST.get(feature["name"], "")
                if feature["type"] == "number":
                    try:
                        row[feature["name"]] = float(raw)
                    except ValueError:
                        row[feature["name"]] = raw
                else:
                    row[feature["name"]] = raw
            inputs = [row]
        admitted = predictions.prediction_create(
            actor=actor, version=version, inputs=inputs, request_id=getattr(request, "request_id", ""))
        result = predictions.prediction_wait(admitted)
        language = predictions.language_notice(admitted.stored)
    except PortalError as exc:
        error = exc.message
        details = exc.details.get("inputs") if isinstance(exc.details, dict) else None
        if details:
            error += " " + json.dumps(details)
    # 200 either way: htmx swaps only successful responses, and the error is this fragment's content.
    return render(request, "inference/_prediction.html", {"result": result, "error": error, "version": version,
                                                          "language": language})


EMBED_PLAYGROUND_TEXTS = 8


def _playground_embed(request: HttpRequest, actor: Any, version: Any) -> HttpResponse:
    """Texts (one per line) to vectors on a worker, shown as their cosine similarities."""
    import numpy as np

    texts = [line.strip() for line in request.POST.get("texts", "").splitlines() if line.strip()]
    context: dict[str, Any] = {"version": version, "error": ""}
    if not texts:
        context["error"] = _("Write at least one text, one per line.")
    elif len(texts) > EMBED_PLAYGROUND_TEXTS:
        context["error"] = _("At most %(count)s texts here; the API takes more.") % {"count": EMBED_PLAYGROUND_TEXTS}
    else:
        try:
            result = predictions.prediction_wait(predictions.prediction_create(
                actor=actor, version=version, inputs=texts, request_id=getattr(request, "request_id", ""),
                embedding=True))
        except PortalError as exc:
            context["error"] = exc.message
        else:
            vectors = np.asarray([r["embedding"] for r in result["predictions"]], dtype=np.float64)
            unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
            similarity = unit @ unit.T
            context.update(
                result=result, texts=texts, vectors=len(texts), dimensions=vectors.shape[1],
                normalized=bool((version.input_schema or {}).get("normalized")),
                tokens=sum(int(r["tokens"]) for r in result["predictions"]),
                matrix=[{"text": t, "cells": [float(c) for c in row]} for t, row in zip(texts, similarity, strict=True)],
                head=", ".join(f"{x:.4f}" for x in vectors[0][:6]))
    return render(request, "inference/_embeddings.html", context)


class JobForm(forms.Form):
    model = forms.ChoiceField(label=gettext_lazy("Model"))
    file = forms.FileField(label=gettext_lazy("File"), help_text=gettext_lazy(
        "CSV with a 'text' column (text models) or one column per feature; or JSON lines"))

    def __init__(self, *args: Any, model_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["model"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(n, n) for n in model_names]


@member_required
def job_list(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    names = sorted({v.model.name for v in selectors.version_list_visible(actor=actor).select_related("model")
                    .filter(status=VersionStatus.APPROVED, aliases__name="production")})
    form = JobForm(request.POST or None, request.FILES or None, model_names=names)
    if request.method == "POST":
        if not actor.can(Cap.MODEL_PREDICT):
            return forbidden(request, gettext_lazy("run batch jobs"))
        if form.is_valid():
            try:
                version = selectors.version_resolve_for_serving(actor=actor, ref=form.cleaned_data["model"])
                upload = form.cleaned_data["file"]
                job = jobs.batch_job_create(actor=actor, version=version, upload=upload, name=upload.name)
            except PortalError as exc:
                form.add_error("file", exc.message)
            else:
                messages.success(request, _("Job %(number)s queued: %(rows)s rows.") % {"number": job.pk,
                                                                                      "rows": job.rows_total})
                return redirect("jobs")
    context = {"form": form, "jobs": selectors.job_list(actor=actor)[:50], "can_predict": actor.can(Cap.MODEL_PREDICT)}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "inference/_job_rows.html", context)
    return render(request, "inference/job_list.html", context, status=400 if form.errors else 200)


@member_required
@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        jobs.batch_job_cancel(actor=actor, job=selectors.job_get(actor=actor, pk=pk))
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect("jobs")


def usage_today(*, organization_id: int) -> dict[str, Any]:
    row = UsageDaily.objects.filter(organization_id=organization_id, token__isnull=True, day=today()).first()
    return {
        "requests": row.requests if row else 0,
        "rows": row.rows if row else 0,
        "compute_s": round((row.compute_ms if row else 0) / 1000, 2),
        "running_jobs": BatchJob.objects.filter(organization_id=organization_id, status=JobStatus.RUNNING).count(),
    }


@member_required
def usage_card(request: HttpRequest) -> HttpResponse:
    """The dashboard's usage card (loaded in place by the dashboard)."""
    actor = request.actor  # type: ignore[attr-defined]
    context = {
        "usage": usage_today(organization_id=actor.organization.pk),
        "quota": actor.organization.daily_row_quota,
        "model_count": selectors.model_list(actor=actor).count(),
    }
    return render(request, "inference/_usage_card.html", context)
