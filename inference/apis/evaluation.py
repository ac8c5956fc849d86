"""A version's evaluation on held-out data through the API: a job on the workers whose metrics become the version's."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.services import evaluations
from portal.accounts.roles import Cap
from portal.jobs import JobStatus
from portal.web.api import StrictSerializer, actor_of


class MetricsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    accuracy = serializers.FloatField()
    f1_macro = serializers.FloatField()
    roc_auc = serializers.FloatField(allow_null=True)
    roc_auc_of = serializers.CharField()
    calibration_error = serializers.FloatField(help_text="expected calibration error of the predicted label's "
                                                         "probability, 10 equal-width bins")
    calibration_bins = serializers.IntegerField()
    rows = serializers.IntegerField()
    dataset = serializers.CharField()
    dataset_sha256 = serializers.CharField()
    evaluation = serializers.IntegerField()


class EvaluationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    status = serializers.ChoiceField(choices=JobStatus.choices)
    dataset = serializers.CharField(source="dataset_name")
    dataset_sha256 = serializers.CharField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    result = MetricsSerializer(allow_null=True, help_text="the metrics, once done")
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()

    def get_url(self, evaluation: object) -> str:
        return reverse("api-evaluation", args=[evaluation.pk])  # type: ignore[attr-defined]


class EvaluationListCreateApi(APIView):
    required_capability = {"GET": Cap.MODEL_READ, "POST": Cap.MODEL_REGISTER}

    class InputSerializer(StrictSerializer):
        file = serializers.FileField(help_text="CSV: the model's inputs ('text', or one column per feature) and the "
                                               "true label")
        label_column = serializers.CharField(max_length=200, default="label")

    @extend_schema(responses=EvaluationSerializer(many=True), summary="Evaluations of a model version")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        return Response(EvaluationSerializer(selectors.evaluation_list(actor=actor, version=found), many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: EvaluationSerializer},
                   summary="Measure a version's metrics on a held-out file (a job on the workers)")
    def post(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)  # another tenant's: 404 first
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        evaluation = evaluations.evaluation_create(actor=actor, version=found, upload=upload,
                                                   name=getattr(upload, "name", "") or "heldout.csv",
                                                   label_column=data.validated_data["label_column"])
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=EvaluationSerializer, summary="An evaluation: progress, then the metrics")
    def get(self, request: Request, pk: int) -> Response:
        return Response(EvaluationSerializer(selectors.evaluation_get(actor=actor_of(request), pk=pk)).data)
