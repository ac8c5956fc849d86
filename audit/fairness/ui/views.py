"""The browser pages of bias reports; they call the same services as the REST API."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.fairness import charts, selectors, services
from audit.fairness.datasets import DEMO_DATASETS
from audit.fairness.generative_datasets import BOLD_DOMAINS
from audit.fairness.generative_services import PROBE_FIELDS, ProbeOptions
from audit.fairness.metrics import DEFAULT_THRESHOLDS, metric_said, thresholds_check
from inference import selectors as inference_selectors
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, forbidden, htmx_progress

BOLD_DOMAIN_WORDS = {"gender": gettext_lazy("gender"), "race": gettext_lazy("race"),
                     "religious_ideology": gettext_lazy("religious ideology"),
                     "political_ideology": gettext_lazy("political ideology"),
                     "profession": gettext_lazy("profession")}

class ReportForm(forms.Form):
    dataset = forms.ChoiceField(choices=[], label=gettext_lazy("Dataset"))
    file = forms.FileField(required=False, label=gettext_lazy("File"),
                           help_text=gettext_lazy("tabular: evaluation CSV; text: templates CSV"))
    label_column = forms.CharField(required=False, initial="label", label=gettext_lazy("Label column"))
    sensitive_columns = forms.CharField(required=False, label=gettext_lazy("Sensitive columns"),
                                        help_text=gettext_lazy("comma-separated, e.g. sex, race"))
    favourable_label = forms.CharField(required=False, label=gettext_lazy("Favourable label"),
                                       help_text=gettext_lazy("the model label that is the favourable outcome"))
    terms = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label=gettext_lazy("Terms"),
                            help_text=gettext_lazy("identity terms, one per line or comma-separated"))
    score_label = forms.CharField(required=False, label=gettext_lazy("Score label"),
                                  help_text=gettext_lazy("the model label whose probability is scored"))
    domain = forms.ChoiceField(choices=[(d, BOLD_DOMAIN_WORDS.get(d, d)) for d in BOLD_DOMAINS], required=False,
                               label=gettext_lazy("Domain"),
                               help_text=gettext_lazy("the BOLD domain whose groups are compared"))
    prompts_per_group = forms.IntegerField(min_value=1, max_value=200, initial=20, required=False,
                                           label=gettext_lazy("Prompts per group"))
    completions_per_prompt = forms.IntegerField(min_value=1, max_value=10, initial=3, required=False,
                                                label=gettext_lazy("Completions per prompt"))
    max_tokens = forms.IntegerField(min_value=4, max_value=128, initial=32, required=False,
                                    label=gettext_lazy("Max tokens"),
                                    help_text=gettext_lazy("tokens per completion, at most"))
    sentiment_model = forms.CharField(initial="sentiment", required=False, label=gettext_lazy("Sentiment model"),
                                      help_text=gettext_lazy("the served model that scores each completion's sentiment"))
    moderation_model = forms.CharField(initial="moderation", required=False, label=gettext_lazy("Moderation model"),
                                       help_text=gettext_lazy("the served model that scores each completion's toxicity"))

    FIELDS = {  # the fields each kind of model's report asks for
        "tabular-classification": ("dataset", "file", "label_column", "sensitive_columns", "favourable_label"),
        "text-classification": ("dataset", "file", "terms", "score_label"),
        "text-generation": ("dataset", "file", "domain", "prompts_per_group", "completions_per_prompt", "max_tokens",
                            "sentiment_model", "moderation_model"),
    }
    DEMO = {"tabular-classification": "demo-adult", "text-classification": "demo-identity",
            "text-generation": "demo-bold"}

    def __init__(self, *args: Any, task: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in list(self.fields):
            if name not in self.FIELDS.get(task, ()):
                del self.fields[name]
        if "dataset" in self.fields:
            demo = self.DEMO[task]
            self.fields["dataset"].choices = [("upload", _("Upload a file")), (demo, DEMO_DATASETS[demo])]  # type: ignore[attr-defined]
        if task == "text-generation":
            self.fields["file"].help_text = _(
                "Probes: a CSV with the columns group, prompt. Counterfactual pairs: sent_more, sent_less, bias_type "
                "(or template, identity_more, identity_less, bias_type).")

    def probe(self) -> ProbeOptions:
        data = self.cleaned_data
        defaults = ProbeOptions()
        return ProbeOptions(**{name: data.get(name) or getattr(defaults, name) for name in PROBE_FIELDS})


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\r", "").replace("\n", ",").split(",") if t.strip()]


@capability_required(Cap.REPORT_READ, gettext_lazy("read bias reports"))
def version_reports(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        found = inference_selectors.version_get(actor=actor, name=name, version=version)
    except PortalError:
        return render(request, "inference/missing.html", {"name": name}, status=404)
    form = ReportForm(request.POST or None, request.FILES or None, task=found.task)
    status = 200
    if request.method == "POST":
        if not actor.can(Cap.REPORT_CREATE):
            return forbidden(request, gettext_lazy("run bias reports"))
        if form.is_valid():
            data = form.cleaned_data
            try:
                report = services.bias_report_create(
                    actor=actor, version=found, dataset=data["dataset"], upload=data["file"],
                    upload_name=getattr(data["file"], "name", "") or "", label_column=data.get("label_column") or "label",
                    sensitive_columns=_split(data.get("sensitive_columns", "")),
                    favourable_label=data.get("favourable_label", ""),
                    terms=_split(data.get("terms", "")), score_label=data.get("score_label", ""),
                    probe=form.probe() if found.task == "text-generation" else None,
                )
                return redirect("fairness-report", pk=report.pk)
            except PortalError as exc:
                form.add_error(None, exc.message)
        status = 400
    context = {
        "version": found, "form": form, "can_create": actor.can(Cap.REPORT_CREATE),
        "reports": selectors.report_list(actor=actor, version=found),
    }
    return render(request, "fairness/version_reports.html", context, status=status)


@capability_required(Cap.REPORT_READ, gettext_lazy("read bias reports"))
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        report = selectors.report_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "fairness/missing.html", {"pk": pk}, status=404)
    result = report.result or {}
    context: dict[str, Any] = {"report": report, "result": result, "running": report.status in
                               (JobStatus.PENDING, JobStatus.RUNNING)}
    polled = htmx_progress(request, running=context["running"], template="fairness/_progress.html", context=context)
    if polled is not None:
        return polled
    if report.status == JobStatus.DONE:
        if report.kind == "tabular":
            context["axes"] = [{**axis, "chart": charts.selection_rate_chart(axis)} for axis in result["axes"]]
        elif report.kind == "probes":
            context["probe_charts"] = charts.probe_charts(result)
            context["samples"] = _samples(result)
        elif report.kind == "pairs":
            context["pairs_chart"] = charts.pairs_chart(result)
            context["pairs_shown"] = result.get("pairs", [])[:PAIRS_SHOWN]
        else:
            context["shift_chart"] = charts.identity_shift_chart(result["per_term"])
            context["any_flipped"] = any(row.get("flipped") for row in result["per_term"])
    return render(request, "fairness/report.html", context)


SAMPLES_PER_GROUP = 3
PAIRS_SHOWN = 50


def _samples(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A few completions of each group, the lowest sentiment first (what a reviewer should read)."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for completion in sorted(result.get("completions", []), key=lambda c: c["sentiment"]):
        by_group.setdefault(completion["group"], []).append(completion)
    return [{"group": g["group"], "completions": by_group.get(g["group"], [])[:SAMPLES_PER_GROUP]}
            for g in result.get("groups", [])]


@capability_required(Cap.REPORT_READ, gettext_lazy("read the fairness policy"))
def policy(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    current = services.policy_for(actor.organization)
    if request.method == "POST":
        if not actor.can(Cap.ORG_MANAGE):
            return forbidden(request, gettext_lazy("change the fairness policy"))
        try:
            thresholds: dict[str, dict[str, float]] = {}
            for name in DEFAULT_THRESHOLDS:
                for level in ("warn", "fail"):
                    raw = request.POST.get(f"{name}.{level}", "").strip()
                    if raw:
                        thresholds.setdefault(name, {})[level] = float(raw)
            services.fairness_policy_update(
                actor=actor, thresholds=thresholds, min_group_size=int(request.POST.get("min_group_size") or 30),
                bootstrap_resamples=int(request.POST.get("bootstrap_resamples") or 1000),
                require_passing_report=request.POST.get("require_passing_report") == "on",
            )
            messages.success(request, _("Fairness policy saved."))
            return redirect("fairness-policy")
        except ValueError:
            messages.error(request, _("Thresholds and sizes must be numbers."))
        except PortalError as exc:
            messages.error(request, exc.message)
    effective = thresholds_check(current.thresholds)
    rows = [{"name": n, "label": metric_said(n), **effective[n]} for n in DEFAULT_THRESHOLDS]
    return render(request, "fairness/policy.html", {
        "policy": current, "rows": rows, "can_manage": actor.can(Cap.ORG_MANAGE),
        "thresholds_json": json.dumps(current.thresholds),
    }, status=200 if request.method == "GET" else 400)
