"""Stored completions of generative models (redacted), for owners, reviewers and auditors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.outputs import CompletionOutput
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
