"""Stored completions of generative models (redacted), for owners, reviewers and auditors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.outputs import CompletionOutput
from portal.accounts.roles import Cap
from portal.web.api import actor_of


class CompletionListApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(parameters=[OpenApiParameter("model", str, description="a model name: its completions only"),
                               OpenApiParameter("version", int, description="with model: that version's only")],
                   responses={200: CompletionOutput(many=True)}, summary="Recent completions (redacted), newest first")
    def get(self, request: Request) -> Response:
        actor = actor_of(request)
        found = selectors.completion_list(actor=actor)
        if request.query_params.get("model"):
            found = found.filter(model_version__model__name=request.query_params["model"])
            if request.query_params.get("version", "").isdigit():
                found = found.filter(model_version__version=int(request.query_params["version"]))
        return Response(CompletionOutput(found[:100], many=True).data)


class CompletionDetailApi(APIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(responses=CompletionOutput, summary="A completion: redacted prompt and answer, tokens, receipt")
    def get(self, request: Request, pk: int) -> Response:
        return Response(CompletionOutput(selectors.completion_get(actor=actor_of(request), pk=pk)).data)
