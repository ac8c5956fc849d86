"""/healthz: is the portal able to serve? Database, broker and a worker, each checked for real."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.celery import app as celery_app
from portal.platform.workers import HEARTBEAT_TTL, worker_beats


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"engine": connection.vendor}


def _broker() -> dict[str, Any]:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        conn.default_channel  # noqa: B018  (opens a channel: the broker answers)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else "?"}


def _worker() -> dict[str, Any]:
    # Workers beat into the cache every few seconds (portal.platform.workers); a silent one is down.
    beats = worker_beats()
    if not beats:
        raise RuntimeError(f"no worker has beaten in the last {HEARTBEAT_TTL} s")
    return {"workers": sorted({b["hostname"] for b in beats.values()}), "queues": sorted(beats)}


def _check(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"ok": True, **fn()}
    except Exception as exc:  # any failure is the answer: this part is down
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check(_database), "broker": _check(_broker)}
    # A worker cannot answer through a broker that is down: say so rather than wait for it.
    checks["worker"] = (
        _check(_worker) if checks["broker"]["ok"] else {"ok": False, "error": "broker is down"}
    )
    down = [name for name, check in checks.items() if not check["ok"]]
    body = {"status": "ok" if not down else "unavailable", "down": down, "checks": checks}
    return JsonResponse(body, status=200 if not down else 503)
