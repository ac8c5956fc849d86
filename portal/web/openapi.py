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


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string", "description": "stable, for programs"},
                       "message": {"type": "string", "description": "a sentence, for people"},
                       "details": {"type": "object", "additionalProperties": True}},
    }},
}
ERRORS = {
    "400": "The request is not valid; the message says what to change.",
    "401": "No valid credentials: send 'Authorization: Bearer <token>' or sign in.",
    "403": "The caller's role does not allow this.",
    "404": "No such object in the caller's organisation.",
    "405": "The path does not serve this method.",
    "413": "The request body is larger than the limit.",
    "429": "The rate limit or the daily quota is spent; see Retry-After.",
    "503": "A service the portal needs (a worker, the cache, the broker) is unavailable; try again shortly.",
}


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the error shape every operation answers with, documented on
    every operation (one `Error` component), beside what each operation documents itself."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                if status == "413" and method in {"get", "delete"}:
                    continue
                responses.setdefault(status, {"description": description, "content": reference})
    return result
