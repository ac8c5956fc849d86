"""Usage over time through the API."""

from __future__ import annotations

from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.exceptions import InvalidInput
from inference.usage_history import MAX_DAYS, usage_history
from portal.accounts.roles import Cap
from portal.web.api import actor_of


class DaySerializer(serializers.Serializer):  # type: ignore[type-arg]
    day = serializers.DateField()
    requests = serializers.IntegerField()
    rows = serializers.IntegerField()
    compute_ms = serializers.FloatField()
    energy_wh = serializers.FloatField(help_text="the energy of the day's served work (Wh)")
    energy_estimated_wh = serializers.FloatField(help_text="the part of it estimated (a power model), not measured")
    carbon_g = serializers.FloatField(help_text="g CO2e, at the grid intensity in force when it was served")


class TokenUsageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    token = serializers.IntegerField()
    name = serializers.CharField()
    requests = serializers.IntegerField()
    rows = serializers.IntegerField()
    energy_wh = serializers.FloatField()
    carbon_g = serializers.FloatField()


class ModelUsageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = serializers.CharField()
    requests = serializers.IntegerField()
    batch_jobs = serializers.IntegerField()
    rows = serializers.IntegerField()
    energy_wh = serializers.FloatField()
    carbon_g = serializers.FloatField(help_text="at the grid intensity now")


class EnergySerializer(serializers.Serializer):  # type: ignore[type-arg]
    energy_wh = serializers.FloatField()
    estimated_wh = serializers.FloatField(help_text="estimated by a power model where no counter measured")
    carbon_g = serializers.FloatField()
    grid_g_per_kwh = serializers.FloatField()
    grid_source = serializers.CharField()


class UsageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    since = serializers.DateField()
    until = serializers.DateField()
    daily = DaySerializer(many=True)
    tokens = TokenUsageSerializer(many=True)
    models = ModelUsageSerializer(many=True)
    energy = EnergySerializer(help_text="the period's energy and carbon")


class UsageApi(APIView):
    required_capability = Cap.ORG_READ

    @extend_schema(parameters=[OpenApiParameter("days", int, description=f"1 to {MAX_DAYS}, default 30")],
                   responses=UsageSerializer, summary="Usage per day, per token and per model over a period")
    def get(self, request: Request) -> Response:
        try:
            days = int(request.query_params.get("days") or 30)
        except ValueError:
            raise InvalidInput(gettext('days must be a whole number from 1 to %(max_days)s.') % {"max_days": MAX_DAYS}) from None
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput(gettext('days must be a whole number from 1 to %(max_days)s; got %(days)s.') % {"max_days": MAX_DAYS, "days": days})
        return Response(UsageSerializer(usage_history(actor=actor_of(request), days=days)).data)
