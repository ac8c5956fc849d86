"""The browser pages of explanations: a stored prediction, its local explanations, global explanations."""

from __future__ import annotations

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
from inference.ml.explain import MAX_EVALS, MIN_EVALS, budget_floor
from inference.models import GlobalSource, Task
from inference.outputs import ExplanationOutput
from inference.services import explanations, global_explanations, predictions
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, htmx_progress, member_required

RUNNING = (JobStatus.PENDING, JobStatus.RUNNING)


def _missing(request: HttpRequest, what: str) -> HttpResponse:
    return render(request, "inference/missing.html", {"name": what, "why": f"There is no {what} in this organisation."},
                  status=404)


@member_required
def prediction_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        prediction = selectors.prediction_get(actor=actor, pk=pk)
    except PortalError:
        return _missing(request, f"prediction {pk}")
    answer = predictions.prediction_result(prediction)
    rows = (prediction.inputs or {}).get("rows", [])
    outputs = answer.get("predictions") or []
    items = [{"index": i, "input": row, "output": outputs[i] if i < len(outputs) else None} for i, row in enumerate(rows)]
    return render(request, "inference/prediction.html", {
        "prediction": prediction, "answer": answer, "rows": items,
        "explanations": prediction.explanations.select_related("requested_by").order_by("-created_at")[:50],
        "embedding": prediction.model_version.task == Task.EMBEDDING,
        "can_explain": actor.can(Cap.MODEL_PREDICT) and prediction.status == JobStatus.DONE and bool(rows)
        and prediction.model_version.task != Task.EMBEDDING,
        "default_evals": settings.EXPLAIN_DEFAULT_EVALS, "max_evals": MAX_EVALS,
        "min_evals": budget_floor(prediction.model_version.task,
                                  len(prediction.model_version.input_schema.get("features", []))),
    })


@capability_required(Cap.MODEL_PREDICT, gettext_lazy("explain predictions"))
@require_POST
def prediction_explain(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        prediction = selectors.prediction_get(actor=actor, pk=pk)
    except PortalError:
        return _missing(request, f"prediction {pk}")
    try:
        row = int(request.POST.get("row") or 0)
        budget = int(request.POST.get("max_evals") or settings.EXPLAIN_DEFAULT_EVALS)
    except ValueError:
        messages.error(request, _("The row and the budget must be whole numbers."))
        return redirect("prediction", pk=pk)
    try:
        explanation = explanations.explanation_create(actor=actor, prediction=prediction, row=row,
                                                      max_evals=budget).stored
    except PortalError as exc:
        messages.error(request, exc.message)
        return redirect("prediction", pk=pk)
    return redirect("explanation", pk=explanation.pk)


@member_required
def explanation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        explanation = selectors.explanation_get(actor=actor, pk=pk)
    except PortalError:
        return _missing(request, f"explanation {pk}")
    body = ExplanationOutput(explanation).data
    context: dict[str, Any] = {"explanation": explanation, "body": body, "running": explanation.status in RUNNING}
    polled = htmx_progress(request, running=context["running"], template="inference/_explanation_progress.html",
                           context=context)
    if polled is not None:
        return polled
    if explanation.status == JobStatus.DONE:
        from inference.ml.explain import summary_of

        context["summary"] = summary_of(explanation.result or {})  # stored in the worker's words: said again in the reader's
        label = body["labels"].index(body["label"])
        if body["words"]:
            context["heat_map"] = charts.word_heat_map(body["words"], body["label"])
            context["table"] = sorted(({"name": w["word"], "value": w["value"]} for w in body["words"]),
                                      key=lambda r: -abs(r["value"]))
        else:
            context["waterfall"] = charts.waterfall(body)
            context["table"] = sorted(
                ({"name": name, "input": value, "value": v[label]} for name, value, v in
                 zip(body["features"], body["feature_values"], body["values"], strict=True)),
                key=lambda r: -abs(r["value"]))
        context["base"] = body["base_values"][label]
        context["output"] = body["output"][label]
        context["other_labels"] = [x for x in body["labels"] if x != body["label"]]
    return render(request, "inference/explanation.html", context)


class GlobalForm(forms.Form):
    dataset = forms.ChoiceField(label=gettext_lazy("Sample"), choices=[
        (GlobalSource.DEMO, gettext_lazy("the shipped evaluation set (demo models)")),
        (GlobalSource.PREDICTIONS, gettext_lazy("the latest rows this version served")),
        (GlobalSource.UPLOAD, gettext_lazy("an uploaded file")),
    ])
    file = forms.FileField(required=False, label=gettext_lazy("File"),
                           help_text=gettext_lazy("CSV or JSON lines, as for batch jobs"))
    sample_size = forms.IntegerField(min_value=1, required=False, label=gettext_lazy("Rows"),
                                     help_text=gettext_lazy("rows explained; default 40 (text), 200 (tabular)"))
    max_evals = forms.IntegerField(min_value=MIN_EVALS, max_value=MAX_EVALS, required=False,
                                   label=gettext_lazy("Budget per row"),
                                   help_text=gettext_lazy("model evaluations per row"))


@capability_required(Cap.REPORT_CREATE, gettext_lazy("compute global explanations"))
@require_POST
def global_explanation_create(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    back = f"/models/{name}/?v={version}#explanations"
    form = GlobalForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{field}: {' '.join(str(e) for e in errors)}"
                                          for field, errors in form.errors.items()))
        return redirect(back)
    try:
        found = selectors.version_get(actor=actor, name=name, version=version)
        job = global_explanations.global_explanation_create(
            actor=actor, version=found, source=form.cleaned_data["dataset"], upload=form.cleaned_data["file"],
            upload_name=getattr(form.cleaned_data["file"], "name", "") or "",
            sample_size=form.cleaned_data["sample_size"], max_evals=form.cleaned_data["max_evals"],
        )
    except PortalError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    return redirect("global-explanation", pk=job.pk)


@capability_required(Cap.REPORT_READ, gettext_lazy("read global explanations"))
def global_explanation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        job = selectors.global_explanation_get(actor=actor, pk=pk)
    except PortalError:
        return _missing(request, f"global explanation {pk}")
    context: dict[str, Any] = {"job": job, "result": job.result or {}, "running": job.status in RUNNING}
    polled = htmx_progress(request, running=context["running"], template="inference/_global_progress.html",
                           context=context)
    if polled is not None:
        return polled
    if job.status == JobStatus.DONE and job.result:
        kind = job.result["kind"]
        context["chart"] = charts.global_bars(job.result["ranking"], kind=kind)
    return render(request, "inference/global_explanation.html", context)


def card_section(*, actor: Any, version: Any) -> dict[str, Any]:
    """What the model card's Explanations section shows: the latest global explanation and the form.

    Global explanations are of classifiers (text and tabular); a generative or embedding model's page
    has none (it was a KeyError, a 500 for every owner opening such a page, until session 26)."""
    if not actor.can(Cap.REPORT_READ) or Task(version.task) not in global_explanations.DEFAULT_SAMPLE:
        return {}
    jobs = list(selectors.global_explanation_list(actor=actor, version=version)[:10])
    latest = next((j for j in jobs if j.status == JobStatus.DONE and j.result), None)
    return {
        "global_jobs": jobs, "global_latest": latest,
        "global_chart": charts.global_bars(latest.result["ranking"], kind=latest.result["kind"], top=10)
        if latest and latest.result else "",
        "global_form": GlobalForm(initial={"dataset": GlobalSource.DEMO}) if actor.can(Cap.REPORT_CREATE) else None,
        "global_defaults": {"sample": global_explanations.DEFAULT_SAMPLE[Task(version.task)],
                            "evals": global_explanations.DEFAULT_EVALS[Task(version.task)]},
    }
