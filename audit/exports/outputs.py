"""The response body of a compliance export (portal/platform/outputs.py says the convention)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.exports import mapping
from portal.jobs import JobStatus
from portal.platform.outputs import OutputSerializer, Receipt, status_is

_done, _failed = status_is(JobStatus.DONE), status_is(JobStatus.FAILED)


class Period(serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField(source="period_start", help_text="serving statistics from this day (inclusive)")
    end = serializers.DateField(source="period_end", help_text="to this day (inclusive)")


class BundleOutput(serializers.Serializer):  # type: ignore[type-arg]
    sha256 = serializers.CharField(source="bundle_sha256")
    bytes = serializers.IntegerField(source="bundle_bytes")
    url = serializers.SerializerMethodField(help_text="download the signed ZIP bundle")

    @extend_schema_field(serializers.CharField())
    def get_url(self, export: Any) -> str:
        return reverse("api-export-download", args=[export.pk])


class BundleFile(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class Issue(serializers.Serializer):  # type: ignore[type-arg]
    severity = serializers.CharField(help_text="high, medium or low")
    area = serializers.CharField()
    message = serializers.CharField()


class Coverage(serializers.Serializer):  # type: ignore[type-arg]
    present = serializers.IntegerField()
    partial = serializers.IntegerField()  # type: ignore[assignment]  # the metaclass takes fields off the class
    missing = serializers.IntegerField()


class CoverageField(serializers.DictField):
    """Per framework: items present, partial, missing (a field, not a method: a method field is read-only,
    which the schema would list as always present, and this one is there only once the export is done)."""

    def get_attribute(self, instance: Any) -> dict[str, dict[str, int]]:
        return mapping.coverage(instance.mapping)


class ExportOutput(OutputSerializer):
    only_when = {"bundle": _done, "files": _done, "issues": _done, "coverage": _done, "receipt": _done,
                 "error": _failed}

    id = serializers.IntegerField()
    number = serializers.IntegerField(help_text="the version's n-th export")
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    status = serializers.CharField()
    stage = serializers.CharField(allow_blank=True)
    steps_done = serializers.IntegerField()
    steps_total = serializers.IntegerField()
    period = Period(source="*")
    language = serializers.CharField(help_text="the PDF report's language")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()
    bundle = BundleOutput(source="*")
    files = BundleFile(many=True)
    issues = Issue(many=True)
    coverage = CoverageField(child=Coverage(), help_text="per framework: items present, partial, missing")
    receipt = Receipt()
    error = serializers.CharField()

    @extend_schema_field(serializers.CharField())
    def get_url(self, export: Any) -> str:
        return reverse("api-export", args=[export.pk])
