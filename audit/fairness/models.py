from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.accounts.models import Organization
from portal.jobs import WorkerJob


class FairnessPolicy(models.Model):
    """An organisation's rules for bias reports: thresholds, group size, resamples, the approval gate."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="fairness_policy")
    thresholds = models.JSONField(default=dict, blank=True, help_text="overrides of the default warn/fail levels")
    min_group_size = models.PositiveIntegerField(default=30)
    bootstrap_resamples = models.PositiveIntegerField(default=1000)
    require_passing_report = models.BooleanField(
        default=False, help_text="a version needs a passing bias report before a reviewer can approve it"
    )
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)


class ReportKind(models.TextChoices):
    TABULAR = "tabular"
    TEXT = "text"
    PROBES = "probes"  # a generative model's completions per group (BOLD)
    PAIRS = "pairs"  # a generative model's likelihood of counterfactual sentence pairs


class Verdict(models.TextChoices):
    PASS = "pass"  # noqa: S105  (a verdict, not a password)
    WARN = "warn"
    FAIL = "fail"


class BiasReport(WorkerJob):
    """One bias report of a model version on one dataset; numbered per version, never changed once done."""

    model_version = models.ForeignKey("inference.ModelVersion", on_delete=models.PROTECT, related_name="bias_reports")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=ReportKind.choices)
    dataset_name = models.CharField(max_length=200)
    dataset_sha256 = models.CharField(max_length=64)
    dataset_path = models.CharField(max_length=300)
    params = models.JSONField(default=dict)
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    verdict = models.CharField(max_length=8, choices=Verdict.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["model_version", "number"], name="bias_report_number_unique")]

    def __str__(self) -> str:
        return f"bias report {self.number} of {self.model_version}"
