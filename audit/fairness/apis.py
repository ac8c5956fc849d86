from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.fairness import exports, selectors, services
from audit.fairness.datasets import DEMO_DATASETS
from audit.fairness.exceptions import InvalidDataset, ReportNotFinished
from audit.fairness.generative_datasets import BOLD_DOMAINS
from audit.fairness.generative_services import PROBE_FIELDS, ProbeOptions
from inference import selectors as inference_selectors
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.platform.parsers import loads_checked
from portal.web.api import StrictSerializer, actor_of


class ReportSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    number = serializers.IntegerField()
    kind = serializers.CharField()
    dataset_name = serializers.CharField()
    dataset_sha256 = serializers.CharField()
    params = serializers.JSONField()
    status = serializers.CharField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    verdict = serializers.CharField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ReportDetailSerializer(ReportSerializer):
    result = serializers.JSONField(allow_null=True)


def _names(value: Any) -> list[str]:
    """A list given as a JSON list, or as one string separated by commas or new lines."""
    if value in (None, ""):
        return []
    if isinstance(value, list):
        items = value
    else:
        text = str(value).strip()
        if text.startswith("["):
            try:
                items = loads_checked(text, where="the list")
            except json.JSONDecodeError:
                raise InvalidDataset(gettext('The list is not valid JSON.')) from None
            except ValueError as exc:
                raise InvalidDataset(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None  # a sentence of the checker's own
        else:
            items = text.replace("\r", "").replace("\n", ",").split(",")
    if not isinstance(items, list):
        raise InvalidDataset(gettext('The list must be a JSON list of names.'))
    return [str(item).strip() for item in items if str(item).strip()]


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]})
class NameListField(serializers.Field):  # type: ignore[type-arg]
    """A list of names: a JSON list, or one string separated by commas or new lines (forms, multipart)."""

    def to_internal_value(self, data: Any) -> list[str]:
        return _names(data)

    def to_representation(self, value: Any) -> list[str]:
        return list(value)


class BiasReportListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.REPORT_CREATE}

    class InputSerializer(StrictSerializer):
        dataset = serializers.ChoiceField(
            choices=["upload", *DEMO_DATASETS], default="upload",
            help_text="upload (send `file`), demo-adult (tabular), demo-identity (text) or demo-bold (generative)",
        )
        file = serializers.FileField(
            required=False,
            help_text="tabular: an evaluation CSV with the model's features, the label and the sensitive columns; "
            "text: a templates CSV (`template` with {identity}, optional 0/1 `label`); generative: probes "
            "(`group`, `prompt`) or counterfactual pairs (`sent_more`, `sent_less`, `bias_type`; or `template`, "
            "`identity_more`, `identity_less`, `bias_type`)",
        )
        label_column = serializers.CharField(required=False, default="label", max_length=100)
        sensitive_columns = NameListField(required=False, help_text="a list, or one comma-separated string")
        favourable_label = serializers.CharField(required=False, default="", allow_blank=True, max_length=100,
                                                 help_text="the model label that is the favourable outcome")
        terms = NameListField(required=False, help_text="identity terms: a list, or one comma-separated string")
        score_label = serializers.CharField(required=False, default="", allow_blank=True, max_length=100,
                                            help_text="text: the model label whose probability is the score")
        domain = serializers.ChoiceField(choices=list(BOLD_DOMAINS), default="gender",
                                         help_text="generative, demo-bold: the BOLD domain whose groups are compared")
        prompts_per_group = serializers.IntegerField(default=20, min_value=1, max_value=200,
                                                     help_text="generative probes: prompts drawn per group (seeded)")
        completions_per_prompt = serializers.IntegerField(default=3, min_value=1, max_value=10,
                                                          help_text="generative probes: sampled completions per prompt")
        max_tokens = serializers.IntegerField(default=32, min_value=4, max_value=128,
                                              help_text="generative probes: tokens per completion, at most")
        sentiment_model = serializers.CharField(default="sentiment", max_length=120,
                                                help_text="generative probes: the served sentiment model that scores "
                                                "completions (name, name@alias or name@version)")
        moderation_model = serializers.CharField(default="moderation", max_length=120,
                                                 help_text="generative probes: the served moderation model that scores "
                                                 "completions")

    @extend_schema(responses=ReportSerializer(many=True), summary="Bias reports of a model version")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = inference_selectors.version_get(actor=actor, name=name, version=version)
        return Response(ReportSerializer(selectors.report_list(actor=actor, version=found), many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
                   responses={202: ReportSerializer}, summary="Run a bias report (a job on the workers)")
    def post(self, request: Request, name: str, version: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        found = inference_selectors.version_get(actor=actor, name=name, version=version)
        upload = data.validated_data.get("file")
        report = services.bias_report_create(
            actor=actor, version=found, dataset=data.validated_data["dataset"], upload=upload,
            upload_name=getattr(upload, "name", "") or "", label_column=data.validated_data["label_column"],
            sensitive_columns=data.validated_data.get("sensitive_columns") or [],
            favourable_label=data.validated_data["favourable_label"],
            terms=data.validated_data.get("terms") or [], score_label=data.validated_data["score_label"],
            probe=ProbeOptions(**{name: data.validated_data[name] for name in PROBE_FIELDS}),
        )
        return Response(ReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class BiasReportDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=ReportDetailSerializer, summary="A bias report: status, progress and results")
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReportDetailSerializer(selectors.report_get(actor=actor_of(request), pk=pk)).data)


class BiasReportDownloadApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], default="json")],
        responses={(200, "application/json"): {"type": "object", "additionalProperties": True, "description":
                   "the report document: the report's detail with its per-group tables, as a file"},
                   (200, "text/csv"): bytes},
        summary="Download a finished bias report as JSON or CSV",
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        report = selectors.report_get(actor=actor_of(request), pk=pk)
        if report.status != JobStatus.DONE:
            raise ReportNotFinished(gettext('The report is %(status)s; it can be downloaded once it is done.') % {"status": report.status})
        wanted = request.query_params.get("format", "json")
        if wanted not in ("json", "csv"):
            raise InvalidDataset(gettext('format must be json or csv.'))
        stem = f"bias-report-{report.model_version.model.name}-v{report.model_version.version}-{report.number}"
        if wanted == "csv":
            body, content_type = exports.report_csv(report).encode(), "text/csv"
        else:
            body, content_type = json.dumps(exports.report_document(report), indent=1).encode(), "application/json"
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{stem}.{wanted}"'
        return response


class FairnessPolicyApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "PUT": Cap.ORG_MANAGE}

    class PolicySerializer(StrictSerializer):
        thresholds = serializers.JSONField(required=False, help_text="{metric: {warn, fail}}; omitted ones keep defaults")
        min_group_size = serializers.IntegerField(required=False)
        bootstrap_resamples = serializers.IntegerField(required=False)
        require_passing_report = serializers.BooleanField(required=False)

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        thresholds = serializers.JSONField()
        effective_thresholds = serializers.JSONField()
        min_group_size = serializers.IntegerField()
        bootstrap_resamples = serializers.IntegerField()
        require_passing_report = serializers.BooleanField()

    @staticmethod
    def _out(policy: Any) -> dict[str, Any]:
        from audit.fairness.metrics import thresholds_check

        return {"thresholds": policy.thresholds, "effective_thresholds": thresholds_check(policy.thresholds),
                "min_group_size": policy.min_group_size, "bootstrap_resamples": policy.bootstrap_resamples,
                "require_passing_report": policy.require_passing_report}

    @extend_schema(responses=OutputSerializer, summary="The organisation's fairness policy")
    def get(self, request: Request) -> Response:
        return Response(self._out(services.policy_for(actor_of(request).organization)))

    @extend_schema(request=PolicySerializer, responses=OutputSerializer, summary="Change the fairness policy")
    def put(self, request: Request) -> Response:
        data = self.PolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        thresholds = data.validated_data.get("thresholds")
        if thresholds is not None and not isinstance(thresholds, dict):
            raise InvalidDataset(gettext('thresholds must be an object: {metric: {warn, fail}}.'))
        policy = services.fairness_policy_update(actor=actor_of(request), **data.validated_data)
        return Response(self._out(policy))
