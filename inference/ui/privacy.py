"""The browser pages of private fine-tuning: datasets and their budgets, the ledger, jobs with live progress."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
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
    model = forms.ChoiceField(label=gettext_lazy("Model"),
                              help_text=gettext_lazy("the text classifier or generative model the records are for"))
    file = forms.FileField(label=gettext_lazy("File"), help_text=gettext_lazy(
        "a classifier: CSV with columns text and label; a generative model: text (a record a line), a CSV with a text "
        "column, or JSON lines of text or chat messages; the records are never shown back"))
    epsilon_cap = forms.FloatField(min_value=0.01, max_value=50, initial=8.0, label=gettext_lazy("Epsilon cap"),
                                   help_text=gettext_lazy("all runs together"))
    delta_cap = forms.FloatField(min_value=0, max_value=1e-3, initial=1e-5, label=gettext_lazy("Delta cap"),
                                 help_text=gettext_lazy("below 1/rows"))

    def __init__(self, *args: Any, model_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["model"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(n, n) for n in model_names]


class FineTuneForm(forms.Form):
    base_version = forms.TypedChoiceField(coerce=int, label=gettext_lazy("Base version"))
    target_epsilon = forms.FloatField(min_value=0.01, initial=4.0, label=gettext_lazy("Target epsilon"))
    epochs = forms.IntegerField(min_value=1, max_value=50, initial=training_datasets.DEFAULTS["epochs"],
                                label=gettext_lazy("Epochs"))
    batch_size = forms.IntegerField(min_value=1, initial=training_datasets.DEFAULTS["batch_size"],
                                    label=gettext_lazy("Batch size"))
    learning_rate = forms.FloatField(initial=training_datasets.DEFAULTS["learning_rate"],
                                     label=gettext_lazy("Learning rate"))
    lr_schedule = forms.ChoiceField(choices=[(k, f"{k}: {v}") for k, v in dp_accounting.SCHEDULES.items()],
                                    initial=training_datasets.DEFAULTS["lr_schedule"],
                                    label=gettext_lazy("Learning-rate schedule"))
    max_grad_norm = forms.FloatField(initial=training_datasets.DEFAULTS["max_grad_norm"],
                                     label=gettext_lazy("Clipping norm"))
    lora_rank = forms.IntegerField(required=False, min_value=1, max_value=64, label=gettext_lazy("LoRA rank"),
                                   help_text=format_lazy(gettext_lazy("generative models: the adapters' rank "
                                                                      "(default {rank})"),
                                                         rank=private_lm.ADAPTER_DEFAULTS["rank"]))
    lora_alpha = forms.FloatField(required=False, label=gettext_lazy("LoRA alpha"),
                                  help_text=format_lazy(gettext_lazy("default {alpha}"),
                                                        alpha=private_lm.ADAPTER_DEFAULTS["alpha"]))
    lora_targets = forms.CharField(required=False, max_length=400, label=gettext_lazy("Adapted layers"),
                                   help_text=format_lazy(gettext_lazy("comma-separated Linear layer names "
                                                                      "(default {targets})"),
                                                         targets=", ".join(private_lm.ADAPTER_DEFAULTS["targets"])))

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


@capability_required(Cap.REPORT_READ, gettext_lazy("see training datasets"))
def privacy_home(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = DatasetForm(request.POST or None, request.FILES or None, model_names=_text_models(actor))
    if request.method == "POST":
        if not actor.can(Cap.MODEL_REGISTER):
            return forbidden(request, gettext_lazy("upload training data"))
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
                messages.success(request, _("Stored %(name)s: %(train)s training rows, %(held)s held out.") % {
                    "name": dataset.name, "train": dataset.train_rows, "held": dataset.holdout_rows})
                return redirect("privacy-dataset", pk=dataset.pk)
    datasets = [(d, training_datasets.budget_summary(d)) for d in selectors.dataset_list(actor=actor)]
    return render(request, "inference/privacy.html", {
        "form": form, "datasets": datasets, "jobs": selectors.finetune_list(actor=actor)[:50],
        "can_upload": actor.can(Cap.MODEL_REGISTER),
    }, status=400 if form.errors else 200)


@capability_required(Cap.REPORT_READ, gettext_lazy("see training datasets"))
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        dataset = selectors.dataset_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": _("dataset %(number)s") % {"number": pk}}, status=404)
    versions = [v.version for v in dataset.model.versions.exclude(status=VersionStatus.RETIRED).order_by("-version")]
    generative = dataset.model.versions.filter(task=Task.GENERATION).exists()
    form = FineTuneForm(request.POST or None, versions=versions, generative=generative,
                        initial={"base_version": versions[0] if versions else None})
    if request.method == "POST":
        if not actor.can(Cap.MODEL_REGISTER):
            return forbidden(request, gettext_lazy("fine-tune models"))
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


@capability_required(Cap.REPORT_READ, gettext_lazy("see fine-tuning jobs"))
def finetune_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        job = selectors.finetune_get(actor=actor, pk=pk)
    except PortalError:
        return render(request, "inference/missing.html", {"name": _("fine-tuning job %(number)s") % {"number": pk}}, status=404)
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
        messages.success(request, _("Cancelling: the run stops at its next step; what it did not spend is released."))
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect("fine-tune", pk=pk)
