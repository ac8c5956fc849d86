"""Batch jobs through the API: a file of rows predicted on the workers, with progress and results."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.exceptions import JobNotFinished, JobResultsGone
from inference.services import jobs
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.web.api import StrictSerializer, actor_of


class JobSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    input_name = serializers.CharField()
    status = serializers.CharField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class JobListCreateApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "POST": Cap.MODEL_PREDICT}

    class InputSerializer(StrictSerializer):
        file = serializers.FileField(help_text="CSV (a 'text' column, or one column per feature) or JSON lines")

    @extend_schema(responses=JobSerializer(many=True), summary="Batch jobs of a model")
    def get(self, request: Request, name: str) -> Response:
        actor = actor_of(request)
        model = selectors.model_get(actor=actor, name=name.split("@", 1)[0])  # 404 for a model that is not there
        found = selectors.job_list(actor=actor).filter(model_version__model=model)
        return Response(JobSerializer(found[:200], many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: JobSerializer},
                   summary="Start a batch job")
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        version = selectors.version_resolve_for_serving(actor=actor, ref=name)
        upload = data.validated_data["file"]
        job = jobs.batch_job_create(actor=actor, version=version, upload=upload, name=upload.name or "upload")
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=JobSerializer, summary="A batch job's status and progress")
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobSerializer(selectors.job_get(actor=actor_of(request), pk=pk)).data)


class JobCancelApi(APIView):
    required_capability = Cap.MODEL_PREDICT

    @extend_schema(request=None, responses=JobSerializer, summary="Cancel a batch job")
    def post(self, request: Request, pk: int) -> Response:
        actor = actor_of(request)
        job = jobs.batch_job_cancel(actor=actor, job=selectors.job_get(actor=actor, pk=pk))
        return Response(JobSerializer(job).data)


class JobResultsApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses={(200, "text/csv"): bytes}, summary="A finished job's results (CSV)")
    def get(self, request: Request, pk: int) -> Any:
        job = selectors.job_get(actor=actor_of(request), pk=pk)
        if job.status != JobStatus.DONE:
            raise JobNotFinished(gettext('The job is %(status)s; results exist once it is done.') % {"status": job.status})
        try:
            handle = default_storage.open(job.result_path, "rb")
        except FileNotFoundError:
            raise JobResultsGone(
                gettext('The results of job %(pk)s are no longer in the artifact store; run the job again.') % {"pk": job.pk}
            ) from None
        return FileResponse(handle, as_attachment=True, filename=f"job-{job.pk}-results.csv",
                            content_type="text/csv")
