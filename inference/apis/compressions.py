"""Compressions through the API: int8 or ONNX versions of a model with their measured loss, and the policy
of how much loss an organisation accepts."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.ml import compression
from inference.services import compressions
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.web.api import StrictSerializer, actor_of


class CompressionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField(source="source_version.model.name")
    source_version = serializers.IntegerField(source="source_version.version")
    method = serializers.CharField()
    keep_float = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=JobStatus.choices)
    stage = serializers.CharField(help_text="compressing, measuring, registering, done")
    dataset = serializers.CharField(source="dataset_name")
    dataset_sha256 = serializers.CharField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    result = serializers.JSONField(allow_null=True, help_text="what was measured, once done: quality of both models "
                                   "on the held-out data, speed, bytes and memory (see the version's metrics)")
    version = serializers.IntegerField(source="result_version.version", allow_null=True, default=None,
                                       help_text="the compressed draft version, once done")
    headline = serializers.SerializerMethodField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()

    def get_headline(self, job: Any) -> str:
        return compressions.headline(job.result) if job.result else ""

    def get_url(self, job: Any) -> str:
        return reverse("api-compression", args=[job.pk])


class CompressionListCreateApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        method = serializers.ChoiceField(
            choices=sorted(compression.METHODS), default=compression.METHOD,
            help_text="; ".join(f"{name}: {text}" for name, text in compression.METHODS.items())
            + " (text classifiers only)")
        keep_float = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, default=list, max_length=50,
            help_text="Linear layers kept in float, by name or the last parts of it (e.g. down_proj, lm_head)")
        dataset = serializers.CharField(
            max_length=40, required=False, default="",
            help_text="classifiers: 'evaluation' (the rows of the version's latest evaluation, the default) or "
                      "'upload'; generative: 'demo-heldout' (the default) or 'upload'")
        file = serializers.FileField(required=False, help_text="with dataset 'upload': classifiers a CSV of 'text' "
                                     "and the true label; generative models UTF-8 text, one held-out text a line")
        label_column = serializers.CharField(max_length=200, default="label")

    @extend_schema(responses=CompressionSerializer(many=True), summary="Compressions of a model version")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        return Response(CompressionSerializer(selectors.compression_list(actor=actor, version=found), many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
                   responses={202: CompressionSerializer},
                   summary="Compress a version (int8, or ONNX for a text classifier) and measure what it costs (a job on the workers; the result "
                           "is a new draft version)")
    def post(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)  # another tenant's: 404 first
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.get("file")
        job = compressions.compression_create(
            actor=actor, version=found, method=data.validated_data["method"],
            keep_float=data.validated_data["keep_float"],
            dataset=data.validated_data["dataset"] or ("upload" if upload is not None else ""), upload=upload,
            upload_name=getattr(upload, "name", "") or "", label_column=data.validated_data["label_column"])
        return Response(CompressionSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class CompressionDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=CompressionSerializer, summary="A compression: progress, then what was measured")
    def get(self, request: Request, pk: int) -> Response:
        return Response(CompressionSerializer(selectors.compression_get(actor=actor_of(request), pk=pk)).data)


class CompressionPolicySerializer(serializers.Serializer):  # type: ignore[type-arg]
    max_accuracy_drop = serializers.FloatField(help_text="classifiers: percentage points of held-out accuracy")
    max_disparity_change = serializers.FloatField(
        help_text="classifiers: the largest change of any disparity of the source's latest bias report")
    max_perplexity_ratio = serializers.FloatField(help_text="generative: compressed / source perplexity")
    min_greedy_agreement = serializers.FloatField(
        help_text="generative: the least share of the source's greedy tokens the compressed model predicts alike")
    updated_at = serializers.DateTimeField(allow_null=True)


class CompressionPolicyApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "PUT": Cap.ORG_MANAGE}

    class InputSerializer(StrictSerializer):
        max_accuracy_drop = serializers.FloatField(required=False)
        max_disparity_change = serializers.FloatField(required=False)
        max_perplexity_ratio = serializers.FloatField(required=False)
        min_greedy_agreement = serializers.FloatField(required=False)

    @extend_schema(responses=CompressionPolicySerializer, summary="The largest loss a compressed version may have")
    def get(self, request: Request) -> Response:
        policy = compressions.compression_policy_for(actor_of(request).organization)
        return Response(CompressionPolicySerializer(policy).data)

    @extend_schema(request=InputSerializer, responses=CompressionPolicySerializer,
                   summary="Change the largest loss a compressed version may have (admins)")
    def put(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = compressions.compression_policy_update(actor=actor_of(request), **data.validated_data)
        return Response(CompressionPolicySerializer(policy).data)
