from __future__ import annotations

from django.db import models

from portal.jobs import WorkerJob


class ComplianceExport(WorkerJob):
    """One evidence bundle of a model version (PDF, JSON, CSV, signed manifest), numbered per version.

    The bundle itself is in the artifact storage; the row keeps what lists and checks it.
    """

    model_version = models.ForeignKey("inference.ModelVersion", on_delete=models.PROTECT,
                                      related_name="compliance_exports")
    number = models.PositiveIntegerField()
    period_start = models.DateField(help_text="serving statistics from this day (inclusive)")
    period_end = models.DateField(help_text="serving statistics to this day (inclusive)")
    stage = models.CharField(max_length=60, blank=True)
    steps_done = models.PositiveSmallIntegerField(default=0)
    steps_total = models.PositiveSmallIntegerField(default=5)
    bundle_path = models.CharField(max_length=300, blank=True)
    bundle_sha256 = models.CharField(max_length=64, blank=True)
    bundle_bytes = models.BigIntegerField(default=0)
    files = models.JSONField(default=list, blank=True)  # the manifest's file list
    issues = models.JSONField(default=list, blank=True)  # open issues found
    mapping = models.JSONField(default=dict, blank=True)  # the Annex IV / NIST items, as in evidence.json
    audit_index = models.BigIntegerField(null=True, blank=True)
    audit_leaf_hash = models.CharField(max_length=64, blank=True)
    # the PDF report's language (a code of settings.LANGUAGES); evidence.json and the CSV tables are the
    # same in every language
    language = models.CharField(max_length=16, default="en-gb")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["model_version", "number"], name="export_number_unique")]

    def __str__(self) -> str:
        return f"compliance export {self.number} of {self.model_version}"
