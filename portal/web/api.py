"""What every API view shares: strict input parsing and the acting organisation."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from portal.accounts.actor import Actor
from portal.accounts.authentication import request_actor


class StrictSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """An input serializer that refuses fields it does not know (a typo must not pass silently)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}
                )
        return super().to_internal_value(data)


def actor_of(request: Request) -> Actor:
    actor = request_actor(request)
    assert actor is not None, "HasCapability lets no request without an actor through"
    return actor
