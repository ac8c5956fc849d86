from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.accounts.roles import Cap


def organization(request: HttpRequest) -> dict[str, Any]:
    actor = getattr(request, "actor", None)
    if actor is None:
        return {"actor": None}
    return {
        "actor": actor,
        "current_organization": actor.organization,
        "can": {cap.name.lower(): actor.can(cap) for cap in Cap},
        "memberships": getattr(request, "memberships", []),
    }
