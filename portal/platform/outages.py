"""A service the portal leans on (Redis, the broker, the database) is down: 503, never a 500.

The cache (rate limits, lock-outs, worker heartbeats), the broker and the reply keys all live in
Redis in production; when it cannot be reached the request is not the caller's fault and not a
bug of ours, so it is answered 503 with the error shape (the API) or the 503 page (the browser),
and logged once per request as an outage, not as a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("steward.outage")


def outage_of(exc: BaseException) -> str | None:
    """The service that `exc` says is unreachable, or None for any other error."""
    import redis.exceptions
    from django.db import OperationalError as DatabaseDown
    from kombu.exceptions import OperationalError as BrokerDown

    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "cache"
    if isinstance(exc, BrokerDown):
        return "broker"
    if isinstance(exc, DatabaseDown):
        return "database"
    return None


MESSAGE = "The portal cannot reach a service it needs ({service}); try again shortly."


def outage_body(service: str, request_id: str = "") -> dict[str, Any]:
    return {"error": {"code": "service_unavailable", "message": MESSAGE.format(service=service),
                      "details": {"service": service, "request_id": request_id}}}


class OutageMiddleware:
    """Turns an outage raised by a view outside DRF (the sign-in form, the pages) into a 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Django converts what a middleware below raises into a response itself; only the view's
        # exceptions reach process_exception
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        service = outage_of(exc)
        if service is None:
            return None
        log_outage(request, service, exc)
        request_id = getattr(request, "request_id", "")
        if request.path.startswith(("/api/", "/v1/")):
            response: HttpResponse = JsonResponse(outage_body(service, request_id), status=503)
        else:
            from django.template import loader

            page = loader.get_template("503.html").render({"service": service, "request_id": request_id})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = RETRY_AFTER
        return response


RETRY_AFTER = "10"


def log_outage(request: Any, service: str, exc: BaseException) -> None:
    logger.error("outage: %s unreachable on %s %s (%s: %s)", service, request.method, request.path,
                 type(exc).__name__, exc)
