"""OpenAPI generation (drf-spectacular) fitted to our conventions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class PortalAutoSchema(AutoSchema):
    """Names components after their view: every view nests its own `InputSerializer` (STYLE C3),
    so the class name alone would collide. `TokenListCreateApi.InputSerializer` becomes
    `TokenListCreateApiInput`."""

    def _get_serializer_name(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname and "<locals>" not in qualname:
            outer = qualname.rsplit(".", 1)[0].replace(".", "")
            if not name.startswith(outer):
                name = outer + name
        return name


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "portal.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token: stw_..."}
