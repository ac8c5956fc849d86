"""The reviewer's inbox through the API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.reviews import review_queue
from portal.accounts.roles import Cap
from portal.web.api import actor_of


class MetricChangeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    production = serializers.FloatField(allow_null=True)
    this = serializers.FloatField(allow_null=True)


class EvidenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField()
    summary = serializers.CharField()
    verdict = serializers.CharField()
    url = serializers.CharField()
    blocks_approval = serializers.BooleanField()


class ReviewSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.version")
    submitted_by = serializers.CharField(source="version.submitted_by.username", allow_null=True)
    production_version = serializers.IntegerField(source="production.version", allow_null=True, default=None)
    card_changed = serializers.ListField(child=serializers.CharField(), help_text="card fields that differ from "
                                         "production's")
    metrics = MetricChangeSerializer(many=True)
    evidence = EvidenceSerializer(many=True)
    production_evidence = serializers.SerializerMethodField(help_text="production's evidence of the same kinds")
    approvable = serializers.BooleanField()
    refusals = serializers.ListField(child=serializers.CharField(), help_text="why Approve would be refused")


    @extend_schema_field(EvidenceSerializer(many=True))
    def get_production_evidence(self, review: Any) -> list[dict[str, Any]]:
        return EvidenceSerializer(list(review.production_evidence.values()), many=True).data  # type: ignore[return-value]


class ReviewListApi(APIView):
    required_capability = Cap.MODEL_REVIEW

    @extend_schema(responses=ReviewSerializer(many=True),
                   summary="Versions waiting for review, each beside the version in production")
    def get(self, request: Request) -> Response:
        return Response(ReviewSerializer(review_queue(actor=actor_of(request)), many=True).data)
