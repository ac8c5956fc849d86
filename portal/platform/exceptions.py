"""Domain errors and the one place that turns every API error into the same JSON shape.

Every error the REST API returns looks like:
    {"error": {"code": "<stable_code>", "message": "<for a person>", "details": {...}}}
Services raise `PortalError` subclasses (STYLE.md C8); views never catch them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger("steward.api")


class PortalError(Exception):
    status_code = 400
    code = "bad_request"
    message: Any = gettext_lazy("The request cannot be served.")

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = str(message or self.message)  # read in the language of the request that met it
        self.details = details or {}
        super().__init__(self.message)


class NotFound(PortalError):
    status_code = 404
    code = "not_found"
    message: Any = gettext_lazy("No such object.")


class Forbidden(PortalError):
    status_code = 403
    code = "forbidden"
    message: Any = gettext_lazy("You are not allowed to do this.")


class Conflict(PortalError):
    status_code = 409
    code = "conflict"
    message: Any = gettext_lazy("The object is not in a state that allows this.")


class ServiceUnavailable(PortalError):
    status_code = 503
    code = "service_unavailable"
    message: Any = gettext_lazy("A service the portal needs is unavailable; try again shortly.")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _validation_message(detail: Any) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, errors in detail.items():
            first = errors[0] if isinstance(errors, list) and errors else errors
            if isinstance(first, dict):
                first = _validation_message(first)
            label = "input" if field == "non_field_errors" else f"'{field}'"
            parts.append(f"{label}: {first}")
        return _("Invalid input. %(problems)s") % {"problems": "; ".join(parts)}
    if isinstance(detail, list) and detail:
        return _("Invalid input. %(problems)s") % {"problems": detail[0]}
    return _("Invalid input. %(problems)s") % {"problems": detail}


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_request",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error, one shape."""
    # Imported here: rest_framework.views imports the authentication classes, which import this.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, PortalError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    from portal.platform.outages import log_outage, outage_body, outage_of, retry_after

    service = outage_of(exc)
    if service is not None:
        request = context["request"]
        log_outage(request, service, exc)
        return Response(outage_body(service, getattr(request, "request_id", "")), status=503,
                        headers={"Retry-After": retry_after(service)})
    if isinstance(exc, RequestDataTooBig):
        from django.conf import settings

        limit = settings.API_MAX_JSON_BYTES
        return Response(
            error_body(
                "request_too_large",
                _("The request body is larger than the limit of %(limit)s bytes.") % {"limit": limit},
                {"limit_bytes": limit},
            ),
            status=413,
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handler (JSON for /api/) answers and it is logged
    assert isinstance(exc, drf.APIException)
    if isinstance(exc, drf.ValidationError):
        details = exc.detail
        response.data = error_body("invalid", _validation_message(details), details)
        return response
    code = next((c for k, c in _DRF_CODES.items() if isinstance(exc, k)), "error")
    message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else str(exc)
    if isinstance(exc, drf.ParseError):
        message = _("The request body could not be parsed: %(problem)s") % {"problem": exc.detail}
    extra: dict[str, Any] = {}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, drf.Throttled) and wait is not None:
        extra = {"retry_after_seconds": int(wait) + 1}
    response.data = error_body(code, message, extra)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception) -> Any:
    if request.path.startswith("/v1/"):  # OpenAI's error shape on OpenAI's surface
        return JsonResponse({"error": {"message": "No such endpoint.", "type": "invalid_request_error", "param": None,
                                       "code": "unknown_url"}}, status=404)
    if _is_api(request):
        return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> Any:
    if _is_api(request):
        return JsonResponse(
            error_body(
                "internal_error",
                "Something went wrong on our side. It has been logged; quote the request id.",
                {"request_id": getattr(request, "request_id", "")},
            ),
            status=500,
        )
    from django.http import HttpResponseServerError
    from django.template import loader

    try:  # rendered without the request's context processors, which may be what failed
        page = loader.get_template("500.html").render({"request_id": getattr(request, "request_id", "")})
    except Exception:
        from django.views.defaults import server_error

        return server_error(request)
    return HttpResponseServerError(page)


def handler400(request: HttpRequest, exception: Exception) -> Any:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", str(exception) or "Bad request."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)
