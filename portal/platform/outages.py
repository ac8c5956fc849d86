"""A service the portal leans on (Redis, the broker, the database) is down: 503, never a 500.

The cache (rate limits, lock-outs, worker heartbeats), the broker and the reply keys all live in
Redis in production; when it cannot be reached the request is not the caller's fault and not a
bug of ours, so it is answered 503 with the error shape (the API) or the 503 page (the browser),
and logged once per request as an outage, not as a crash.

The database refusing a transaction because another one held what it needed (a deadlock broken by
PostgreSQL, a serialisation failure, a lock not available) is no outage: nothing is unreachable and
the request was undone whole. It is answered 503 too (try again at once), said as what it is
(`details.reason` "conflict") and logged as contention.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext

logger = logging.getLogger("steward.outage")

CONFLICT = "conflict"
# SQLSTATEs of a transaction undone for another's sake: serialization_failure, deadlock_detected,
# lock_not_available
_CONFLICTS = {"40001", "40P01", "55P03"}


def outage_of(exc: BaseException) -> str | None:
    """The service that `exc` says is unreachable, CONFLICT for a transaction undone by contention,
    or None for any other error."""
    import redis.exceptions
    from django.db import OperationalError as DatabaseDown
    from kombu.exceptions import OperationalError as BrokerDown

    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "cache"
    if isinstance(exc, BrokerDown):
        return "broker"
    if isinstance(exc, DatabaseDown):
        return CONFLICT if getattr(exc.__cause__, "sqlstate", None) in _CONFLICTS else "database"
    return None


def outage_body(service: str, request_id: str = "") -> dict[str, Any]:
    if service == CONFLICT:
        message = gettext("Another change to the same records came at the same moment, and this request was "
                          "undone whole; nothing was changed. Try again.")
        details = {"service": "database", "reason": CONFLICT, "request_id": request_id}
    else:
        message = gettext("The portal cannot reach a service it needs (%(service)s); try again shortly.") % {
            "service": service}
        details = {"service": service, "request_id": request_id}
    return {"error": {"code": "service_unavailable", "message": message, "details": details}}


def retry_after(service: str) -> str:
    return "1" if service == CONFLICT else RETRY_AFTER


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

            page = loader.get_template("503.html").render({"service": service, "request_id": request_id,
                                                           "conflict": service == CONFLICT})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = retry_after(service)
        return response


RETRY_AFTER = "10"


def log_outage(request: Any, service: str, exc: BaseException) -> None:
    if service == CONFLICT:
        logger.warning("contention: %s %s undone (%s: %s)", request.method, request.path, type(exc).__name__, exc)
        return
    logger.error("outage: %s unreachable on %s %s (%s: %s)", service, request.method, request.path,
                 type(exc).__name__, exc)
