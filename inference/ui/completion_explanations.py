"""Attributions for generated text in the browser: asked for on a completion's page, shown as a heat map
of the caller's message for the chosen span of the answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from inference import charts, selectors
from inference.outputs import CompletionExplanationOutput
from inference.services.completion_explanations import completion_explanation_create
from inference.services.guard_runs import sentences
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, htmx_progress

RUNNING = (JobStatus.PENDING, JobStatus.RUNNING)


def spans_of(answer: str) -> list[dict[str, Any]]:
    """The spans offered for explaining: the whole answer, then each of its sentences (characters [start, end))."""
    found = [{"start": 0, "end": len(answer), "text": "the whole answer"}]
    at = 0
    for sentence in sentences(answer):
        start = answer.index(sentence, at)
        stripped = sentence.rstrip()
        found.append({"start": start, "end": start + len(stripped), "text": stripped})
        at = start + len(sentence)
    return found if len(found) > 2 else found[:1]


@capability_required(Cap.MODEL_READ, gettext_lazy("explain completions"))
@require_POST
def completion_explain(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        completion = selectors.completion_get(actor=actor, pk=pk)
        start, _, end = (request.POST.get("span") or "").partition(":")
        budget = request.POST.get("max_evals") or ""
        job = completion_explanation_create(
            actor=actor, completion=completion, choice=int(request.POST.get("choice") or 0),
            start=int(start) if start.isdigit() else None, end=int(end) if end.isdigit() else None,
            max_evals=int(budget) if budget.isdigit() else None)
    except PortalError as exc:
        messages.error(request, exc.message)
        return redirect("completion-detail", pk)
    return redirect("completion-explanation", job.pk)


@capability_required(Cap.MODEL_READ, gettext_lazy("see explanations of completions"))
def completion_explanation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        job = selectors.completion_explanation_get(actor=request.actor, pk=pk)  # type: ignore[attr-defined]
    except PortalError:
        return render(request, "inference/missing.html", {"name": gettext("explanation %(number)s") % {"number": pk}}, status=404)
    body = CompletionExplanationOutput(job).data
    context: dict[str, Any] = {"job": job, "body": body, "running": job.status in RUNNING,
                               "answer": str(job.completion.choices[job.choice]["text"]) if job.completion.choices else ""}
    polled = htmx_progress(request, running=context["running"], template="inference/_completion_explanation_progress.html",
                           context=context)
    if polled is not None:
        return polled
    if job.status == JobStatus.DONE:
        context["heat_map"] = charts.word_heat_map(body["words"], gettext("the span"))
        context["table"] = sorted(body["words"], key=lambda w: -abs(w["value"]))
        context["before"] = context["answer"][:job.span_start]
        context["span"] = context["answer"][job.span_start:job.span_end]
        context["after"] = context["answer"][job.span_end:]
    context["max_tokens"] = settings.EXPLAIN_MAX_TOKENS
    return render(request, "inference/completion_explanation.html", context)
