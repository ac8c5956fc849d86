"""Predictions and their explanations through the API, local and global."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.ml.explain import MAX_EVALS, MIN_EVALS
from inference.models import GlobalSource
from inference.outputs import ExplanationOutput, GlobalExplanationOutput, PredictionOutput
from inference.services import explanations, global_explanations, predictions
from portal.accounts.roles import Cap
from portal.web.api import StrictSerializer, actor_of


class PredictApi(APIView):
    """`{name}` is `name` (the production alias), `name@alias` or `name@3`."""

    required_capability = Cap.MODEL_PREDICT

    class InputSerializer(StrictSerializer):
        inputs = serializers.ListField(child=serializers.JSONField(), allow_empty=False, min_length=1)
        subject = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                        help_text="the data subject these inputs are about (for erasure)")
        explain = serializers.BooleanField(required=False, default=False,
                                           help_text="also explain each input (SHAP); at most 8 inputs")
        max_evals = serializers.IntegerField(required=False, help_text="the explanation budget (model evaluations)")

    @extend_schema(request=InputSerializer, responses=PredictionOutput, summary="Predict")
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        version = selectors.version_resolve_for_serving(actor=actor, ref=name)
        inputs, explain = data.validated_data["inputs"], data.validated_data["explain"]
        if explain:  # checked before the prediction is admitted: a refused request leaves nothing
            max_evals = explanations.explain_on_predict_check(version=version, rows=len(inputs),
                                                              max_evals=data.validated_data.get("max_evals"))
        admitted = predictions.prediction_create(
            actor=actor, version=version, inputs=inputs,
            subject=data.validated_data["subject"], request_id=getattr(request._request, "request_id", ""),
        )
        body = PredictionOutput(predictions.prediction_wait(admitted)).data
        body["language"] = predictions.language_notice(admitted.stored)
        if explain:
            body["explanations"] = ExplanationOutput(
                explanations.explanations_of_prediction(actor=actor, prediction=admitted.stored, max_evals=max_evals),
                many=True).data
        return Response(body)


class PredictionDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=PredictionOutput, summary="A stored prediction")
    def get(self, request: Request, pk: int) -> Response:
        prediction = selectors.prediction_get(actor=actor_of(request), pk=pk)
        return Response(PredictionOutput(predictions.prediction_result(prediction)).data)


class ExplainApi(APIView):
    required_capability = Cap.MODEL_PREDICT

    class InputSerializer(StrictSerializer):
        row = serializers.IntegerField(required=False, default=0, help_text="which input of the prediction")
        max_evals = serializers.IntegerField(required=False, help_text=f"model evaluations, {MIN_EVALS} to {MAX_EVALS}")

    @extend_schema(request=InputSerializer, responses={201: ExplanationOutput, 202: ExplanationOutput},
                   summary="Explain a stored prediction (SHAP); 202 while it is still computing")
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        prediction = selectors.prediction_get(actor=actor, pk=pk)
        asked = explanations.explanation_create(
            actor=actor, prediction=prediction, row=data.validated_data["row"],
            max_evals=data.validated_data.get("max_evals"), waited_for=True,
        )
        explanation = explanations.explanation_wait(asked)
        done = explanation.status in ("done", "failed")
        return Response(ExplanationOutput(explanation).data,
                        status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED)


class ExplanationDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=ExplanationOutput, summary="An explanation: attributions, base value, residual")
    def get(self, request: Request, pk: int) -> Response:
        found = selectors.explanation_get(actor=actor_of(request), pk=pk)
        return Response(ExplanationOutput(found).data)


class GlobalExplanationListCreateApi(APIView):
    required_capability = {"GET": Cap.REPORT_READ, "POST": Cap.REPORT_CREATE}

    class InputSerializer(StrictSerializer):
        dataset = serializers.ChoiceField(
            choices=GlobalSource.values, default=GlobalSource.UPLOAD,
            help_text="upload (send `file`), predictions (the latest rows the version served) or demo "
            "(the shipped evaluation set of the demo models)",
        )
        file = serializers.FileField(required=False, help_text="CSV ('text' column, or one column per feature) "
                                     "or JSON lines, as for batch jobs")
        sample_size = serializers.IntegerField(required=False, help_text="rows explained (a seeded draw); "
                                               "default 40 for text, 200 for tabular")
        max_evals = serializers.IntegerField(required=False, help_text=f"per row, {MIN_EVALS} to {MAX_EVALS}")

    @extend_schema(responses={200: GlobalExplanationOutput(many=True)}, summary="Global explanations of a model version")
    def get(self, request: Request, name: str, version: int) -> Response:
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        return Response(GlobalExplanationOutput(selectors.global_explanation_list(actor=actor, version=found),
                                                many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
                   responses={202: GlobalExplanationOutput},
                   summary="Compute a global explanation (mean |SHAP| over a sample; a job on the workers)")
    def post(self, request: Request, name: str, version: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        found = selectors.version_get(actor=actor, name=name, version=version)
        upload = data.validated_data.get("file")
        job = global_explanations.global_explanation_create(
            actor=actor, version=found, source=data.validated_data["dataset"], upload=upload,
            upload_name=getattr(upload, "name", "") or "", sample_size=data.validated_data.get("sample_size"),
            max_evals=data.validated_data.get("max_evals"),
        )
        return Response(GlobalExplanationOutput(job).data, status=status.HTTP_202_ACCEPTED)


class GlobalExplanationDetailApi(APIView):
    required_capability = Cap.REPORT_READ

    @extend_schema(responses=GlobalExplanationOutput, summary="A global explanation: progress, then the ranking")
    def get(self, request: Request, pk: int) -> Response:
        found = selectors.global_explanation_get(actor=actor_of(request), pk=pk)
        return Response(GlobalExplanationOutput(found).data)
