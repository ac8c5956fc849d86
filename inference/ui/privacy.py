"""The browser pages of private fine-tuning: datasets and their budgets, the ledger, jobs with live progress."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from inference import selectors
from inference.ml import dp_accounting, private_lm
from inference.models import Task, VersionStatus
from inference.outputs import FineTuneJobOutput
from inference.services import finetuning, training_datasets
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required, forbidden, htmx_progress, member_required


class DatasetForm(forms.Form):
    model = forms.ChoiceField(help_text="the text classifier or generative model the records are for")
    file = forms.FileField(help_text="a classifier: CSV with columns text and label; a generative model: text (a "
                                     "record a line), a CSV with a text column, or JSON lines of text or chat "
                                     "messages; the records are never shown back")
    epsilon_cap = forms.FloatField(min_value=0.01, max_value=50, initial=8.0, help_text="all runs together")
    delta_cap = forms.FloatField(min_value=0, max_value=1e-3, initial=1e-5, help_text="below 1/rows")

    def __init__(self, *args: Any, model_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["model"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(n, n) for n in model_names]


class FineTuneForm(forms.Form):
    base_version = forms.TypedChoiceField(coerce=int)
    target_epsilon = forms.FloatField(min_value=0.01, initial=4.0)
    epochs = forms.IntegerField(min_value=1, max_value=50, initial=training_datasets.DEFAULTS["epochs"])
    batch_size = forms.IntegerField(min_value=1, initial=training_datasets.DEFAULTS["batch_size"])
    learning_rate = forms.FloatField(initial=training_datasets.DEFAULTS["learning_rate"])
    lr_schedule = forms.ChoiceField(choices=[(k, f"{k}: {v}") for k, v in dp_accounting.SCHEDULES.items()],
                                    initial=training_datasets.DEFAULTS["lr_schedule"], label="Learning-rate schedule")
    max_grad_norm = forms.FloatField(initial=training_datasets.DEFAULTS["max_grad_norm"])
    lora_rank = forms.IntegerField(required=False, min_value=1, max_value=64, label="LoRA rank",
                                   help_text=f"generative models: the adapters' rank (default "
                                             f"{private_lm.ADAPTER_DEFAULTS['rank']})")
    lora_alpha = forms.FloatField(required=False, label="LoRA alpha",
                                  help_text=f"default {private_lm.ADAPTER_DEFAULTS['alpha']}")
    lora_targets = forms.CharField(required=False, max_length=400, label="Adapted layers",
                                   help_text="comma-separated Linear layer names (default "
                                             f"{', '.join(private_lm.ADAPTER_DEFAULTS['targets'])})")

    def __init__(self, *args: Any, versions: list[int], generative: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not generative:
            for name in ("lora_rank", "lora_alpha", "lora_targets"):
                del self.fields[name]
        field = self.fields["base_version"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(v, f"v{v}") for v in versions]


def _text_models(actor: Any) -> list[str]:
    return sorted({v.model.name for v in selectors.version_list_visible(actor=actor).select_related("model")
                   .filter(task__in=[Task.TEXT, Task.GENERATION])})


@capability_required(Cap.REPORT_READ, "see training datasets")
def privacy_home(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = DatasetForm(request.POST or None, request.FILES or None, model_names=_text_models(actor))
    if request.method == "POST":
        if not actor.can(Cap.MODEL_REGISTER):
            return forbidden(request, "upload training data")
        if form.is_valid():
            try:
                upload = form.cleaned_data["file"]
                dataset = training_datasets.dataset_create(
                    actor=actor, model=selectors.model_get(actor=actor, name=form.cleaned_data["model"]),
                    upload=upload, name=upload.name, epsilon_cap=form.cleaned_data["epsilon_cap"],
                    delta_cap=form.cleaned_data["delta_cap"],
                )
            except PortalError as exc:
                form.add_error("file", exc.message)
            else:
                messages.success(request, f"Stored {dataset.name}: {dataset.train_rows} training rows, "
                                          f"{dataset.holdout_rows} held out.")
                return redirect("privacy-dataset", pk=dataset.pk)
    datasets = [(d, training_datasets.budget_summary(d)) for d in selectors.dataset_list(actor=actor)]
    return render(request, "inference/privacy.html", {
        "form": form, "datasets": datasets, "jobs": selectors.finetune_list(actor=actor)[:50],
        "can_upload": actor.can(Cap.MODEL_REGISTER),
    }, status=400 if form.errors else 200)


@capability_required(Cap.REPORT_READ, "see training datasets")
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        dataset = selectors.dataset_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": f"dataset {pk}"}, status=404)
    versions = [v.version for v in dataset.model.versions.exclude(status=VersionStatus.RETIRED).order_by("-version")]
    generative = dataset.model.versions.filter(task=Task.GENERATION).exists()
    form = FineTuneForm(request.POST or None, versions=versions, generative=generative,
                        initial={"base_version": versions[0] if versions else None})
    if request.method == "POST":
        if not actor.can(Cap.MODEL_REGISTER):
            return forbidden(request, "fine-tune models")
        if form.is_valid():
            data = dict(form.cleaned_data)
            adapter = {"rank": data.pop("lora_rank", None), "alpha": data.pop("lora_alpha", None),
                       "targets": [t.strip() for t in (data.pop("lora_targets", "") or "").split(",") if t.strip()]
                       or None}
            try:
                base = selectors.version_get(actor=actor, name=dataset.model.name, version=data.pop("base_version"))
                job = finetuning.finetune_create(actor=actor, dataset=dataset, base_version=base,
                                                 adapter=adapter if generative else None, **data)
            except PortalError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("fine-tune", pk=job.pk)
    return render(request, "inference/privacy_dataset.html", {
        "dataset": dataset, "budget": training_datasets.budget_summary(dataset), "ledger": dataset.ledger.all(),
        "form": form, "can_train": actor.can(Cap.MODEL_REGISTER),
    }, status=400 if form.errors else 200)


@capability_required(Cap.REPORT_READ, "see fine-tuning jobs")
def finetune_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        job = selectors.finetune_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": f"fine-tuning job {pk}"}, status=404)
    running = job.status in (JobStatus.PENDING, JobStatus.RUNNING)
    context = {"job": job, "body": FineTuneJobOutput(job).data, "running": running,
               "can_cancel": running and actor.can(Cap.MODEL_REGISTER)}
    polled = htmx_progress(request, running=running, template="inference/_finetune_progress.html", context=context)
    return polled or render(request, "inference/finetune.html", context)


@member_required
@require_POST
def finetune_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        finetuning.finetune_cancel(actor=actor, job=selectors.finetune_get(actor=actor, pk=pk))
        messages.success(request, "Cancelling: the run stops at its next step; what it did not spend is released.")
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect("fine-tune", pk=pk)
