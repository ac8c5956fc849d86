from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Gives every request an id (or keeps a sane one the client sent), echoed in X-Request-ID.

    The id ties a response to its audit entries and to the logs of the worker that served it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get("X-Request-ID", "")
        request.request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


class BodySizeLimitMiddleware:
    """Refuses an oversized API body with 413 before anything reads it.

    Django alone answers 400 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, and only once a view
    reads it; a client deserves to be told that the size, not the content, is the problem.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(("/api/", "/v1/")):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            multipart = request.content_type == "multipart/form-data"
            limit = settings.API_MAX_UPLOAD_BYTES if multipart else settings.API_MAX_JSON_BYTES
            if length > limit:
                if request.path.startswith("/v1/"):  # OpenAI's error shape on OpenAI's surface
                    return JsonResponse({"error": {
                        "message": f"The request body is larger than the limit of {limit} bytes.",
                        "type": "invalid_request_error", "param": None, "code": "request_too_large"}}, status=413)
                return too_large_response(limit)
        return self.get_response(request)


def too_large_response(limit: int) -> JsonResponse:
    return JsonResponse(
        {
            "error": {
                "code": "request_too_large",
                "message": f"The request body is larger than the limit of {limit} bytes.",
                "details": {"limit_bytes": limit},
            }
        },
        status=413,
    )


# Scripts, styles, images and fonts from this site only; inline style attributes are allowed
# (progress bars and charts set widths and colours with them), inline scripts and <style> blocks
# are not. Nothing may frame the portal, and forms post to it alone.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "style-src-attr 'unsafe-inline'",
    "img-src 'self' data:", "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'self'",
    "form-action 'self'", "frame-ancestors 'none'",
])


class ContentSecurityPolicyMiddleware:
    """Sets the Content-Security-Policy header on every response that has none of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
