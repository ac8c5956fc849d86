"""The answer to a request that waits on a worker (a synchronous prediction), handed straight back.

With Redis, the web process names a reply key when it queues the task; the worker pushes its answer,
or its error, onto that key, and the waiting request takes it with one BLPOP. Celery's result
backend took more steps for the same thing: the worker SET the result and PUBLISHed it, the web's
pub/sub listener thread woke the waiter, which read it and DELeted it (`forget`), with Celery's
result metadata encoded and decoded on the way. A reply key is one request's own list with an
expiry: nothing is left behind when the waiter has gone (a timeout), and no subscription is kept.

The embedded default (no Redis) keeps Celery's result backend, which it polls
(`portal.workers.task_result`); `reply_key()` is None there.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from portal.exceptions import PortalError

PREFIX = "steward:reply:"

_client: Any = None


class ReplyTimeout(CeleryTimeout):
    """No answer came within the wait (a subclass of Celery's, which the other path raises)."""


class WorkerFailed(PortalError):
    """The worker failed the request: its own error (a PortalError's status, code and message), or 500."""

    def __init__(self, *, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.code = status, code


def _redis() -> Any:
    """One client per process (redis-py's pool checks its pid, so a fork gets its own connections).

    Its socket timeout outlasts the longest wait (redis-py's default of 5 s would end a BLPOP that
    waits on a model's first load), and still ends a read from a Redis that went silent.
    """
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5,
                                       socket_timeout=_longest_wait() + 10)
    return _client


def _longest_wait() -> float:
    return max(float(settings.PREDICT_TIMEOUT_SECONDS), 30.0)


def reply_key() -> str | None:
    """A new reply key for one request, or None where answers travel by Celery's result backend."""
    return f"{PREFIX}{uuid.uuid4().hex}" if settings.REDIS_URL else None


def _push(key: str, message: dict[str, Any]) -> None:
    # Kept a little longer than anyone waits, then gone: a waiter that timed out never reads it.
    ttl = int(settings.PREDICT_TIMEOUT_SECONDS) + 60
    _redis().pipeline(transaction=False).rpush(key, json.dumps(message)).expire(key, ttl).execute()


def reply_send(key: str, answer: Any) -> None:
    """Worker side: the answer (JSON) for the request waiting on `key`."""
    _push(key, {"answer": answer})


def reply_fail(key: str, exc: BaseException, *, message: str) -> None:
    """Worker side: the request failed. A PortalError keeps its status, code and message (an
    ArtifactMismatch is a 500 that says so); anything else is a 500 with `message`, which says
    what failed without the internals of the exception."""
    if isinstance(exc, PortalError):
        error = {"status": exc.status_code, "code": exc.code, "message": exc.message}
    else:
        error = {"status": 500, "code": "worker_failed", "message": message}
    _push(key, {"error": error})


def reply_wait(key: str, *, timeout: float) -> Any:
    """Web side: the answer pushed on `key`, waiting at most `timeout` seconds.

    Raises:
        ReplyTimeout: nothing came in time.
        WorkerFailed: the worker failed the request.
    """
    client = _redis()
    longest = client.connection_pool.connection_kwargs["socket_timeout"] - 10  # as the client was built
    found = client.blpop([key], timeout=min(timeout, longest))
    if found is None:
        raise ReplyTimeout(f"no answer within {timeout} s")
    message = json.loads(found[1])
    if "error" in message:
        raise WorkerFailed(**message["error"])
    return message["answer"]
