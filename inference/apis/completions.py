"""Stored completions of generative models (redacted), for owners, reviewers and auditors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.outputs import CompletionExplanationOutput, CompletionOutput
from inference.services.completion_explanations import completion_explanation_create
from portal.accounts.roles import Cap
from portal.web.api import StrictSerializer, actor_of


class CompletionListApi(APIView):
    required_capability = Cap.MODEL_READ

    class FilterSerializer(StrictSerializer):
        # CharField refuses NUL characters, which PostgreSQL text cannot hold: a 400, not a 500.
        model = serializers.CharField(required=False, max_length=100, help_text="a model name: its completions only")
        version = serializers.IntegerField(required=False, min_value=1,
                                           help_text="with model: that version's only")

        def validate(self, attrs: dict[str, object]) -> dict[str, object]:
            if "version" in attrs and "model" not in attrs:
                raise serializers.ValidationError({"version": ["Give the model whose version this is."]})
            return attrs

    @extend_schema(parameters=[FilterSerializer], responses={200: CompletionOutput(many=True)},
                   summary="Recent completions (redacted), newest first")
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        found = selectors.completion_list(actor=actor_of(request))
        if "model" in params.validated_data:
            found = found.filter(model_version__model__name=params.validated_data["model"])
        if "version" in params.validated_data:
            found = found.filter(model_version__version=params.validated_data["version"])
        return Response(CompletionOutput(found[:100], many=True).data)


class CompletionDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=CompletionOutput, summary="A completion: redacted prompt and answer, tokens, receipt")
    def get(self, request: Request, pk: int) -> Response:
        return Response(CompletionOutput(selectors.completion_get(actor=actor_of(request), pk=pk)).data)


class CompletionExplainApi(APIView):
    required_capability = Cap.MODEL_READ

    class InputSerializer(StrictSerializer):
        choice = serializers.IntegerField(required=False, default=0, min_value=0, max_value=127)
        start = serializers.IntegerField(required=False, min_value=0, max_value=10**7,
                                         help_text="the span of the answer: its first character (default 0)")
        end = serializers.IntegerField(required=False, min_value=1, max_value=10**7,
                                       help_text="one past its last character (default: the whole answer)")
        max_evals = serializers.IntegerField(required=False, min_value=1, max_value=10**6,
                                             help_text="the budget in model evaluations")

    @extend_schema(request=InputSerializer, responses={202: CompletionExplanationOutput},
                   summary="Which words of the message drove a span of the answer (SHAP, on the generation worker)")
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        job = completion_explanation_create(actor=actor, completion=selectors.completion_get(actor=actor, pk=pk),
                                            **data.validated_data)
        return Response(CompletionExplanationOutput(job).data, status=202)


class CompletionExplanationDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=CompletionExplanationOutput, summary="An explanation of a completion: progress, then values")
    def get(self, request: Request, pk: int) -> Response:
        job = selectors.completion_explanation_get(actor=actor_of(request), pk=pk)
        return Response(CompletionExplanationOutput(job).data)
