from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.exports import document, selectors, services
from audit.exports.downloads import download_response
from audit.exports.outputs import ExportOutput
from inference import selectors as inference_selectors
from portal.accounts.roles import Cap
from portal.web.api import StrictSerializer, actor_of


class ExportListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.EXPORT_CREATE}

    class InputSerializer(StrictSerializer):
        period_start = serializers.DateField(required=False, help_text="serving statistics from this day "
                                             f"(default: {services.DEFAULT_PERIOD_DAYS} days before the end)")
        period_end = serializers.DateField(required=False, help_text="to this day, inclusive (default: today)")
        language = serializers.CharField(required=False, max_length=16, help_text=(
            "the PDF report's language, one the portal offers (en-gb; zh-hans where offered); default: the "
            "request's (Accept-Language). evidence.json and the CSV tables are the same in every language"))

    @extend_schema(responses={200: ExportOutput(many=True)}, summary="Compliance exports of a model version",
                   operation_id="exports_of_version_list")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = inference_selectors.version_get(actor=actor, name=name, version=version)
        return Response(ExportOutput(selectors.export_list(actor=actor, version=found), many=True).data)

    @extend_schema(request=InputSerializer, responses={202: ExportOutput},
                   summary="Generate a compliance export (PDF, JSON, CSV under a signed manifest; a job)")
    def post(self, request: Request, name: str, version: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        found = inference_selectors.version_get(actor=actor, name=name, version=version)
        export = services.export_create(actor=actor, version=found, period_start=data.validated_data.get("period_start"),
                                        period_end=data.validated_data.get("period_end"),
                                        language=data.validated_data.get("language"))
        return Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)


class ExportListApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses={200: ExportOutput(many=True)}, summary="Compliance exports of the organisation",
                   operation_id="exports_list")
    def get(self, request: Request) -> Response:
        return Response(ExportOutput(selectors.export_list(actor=actor_of(request))[:200], many=True).data)


class ExportDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=ExportOutput, summary="A compliance export: progress, then its files and issues")
    def get(self, request: Request, pk: int) -> Response:
        return Response(ExportOutput(selectors.export_get(actor=actor_of(request), pk=pk)).data)


class ExportDownloadApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(
        parameters=[OpenApiParameter("file", str, description="one file of the bundle by its manifest name "
                                     "(report.pdf, evidence.json, tables/..., manifest.json); the whole zip if absent")],
        responses={(200, "application/zip"): bytes, (200, "application/pdf"): bytes, (200, "application/json"): bytes,
                   (200, "text/csv"): bytes},
        summary="Download a finished export: the bundle (zip), or one of its files",
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        export = selectors.export_get(actor=actor_of(request), pk=pk)
        return download_response(export, request.query_params.get("file", ""))


class ExportSchemaApi(APIView):
    """The JSON Schema of evidence.json: public, like the log's key, so anyone can check a document."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(responses={200: {"type": "object", "additionalProperties": True,
                                   "description": "a JSON Schema (draft 2020-12) document"}},
                   summary="The JSON Schema of a compliance export's evidence.json")
    def get(self, request: Request) -> Response:
        return Response(document.schema())
