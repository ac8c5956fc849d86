"""The answer to a request that waits on a worker (a synchronous prediction or explanation), handed straight back.

The web process names a reply key when it queues the task; the worker puts its answer, or its
error, under that key, and the waiting request takes it.

- With Redis (production) the key is a list: the worker RPUSHes, the waiter BLPOPs, woken at once.
  Celery's result backend took more steps for the same thing: the worker SET the result and
  PUBLISHed it, the web's pub/sub listener thread woke the waiter, which read it and DELeted it,
  with Celery's result metadata encoded and decoded on the way. A reply key is one request's own
  list with an expiry: nothing is left behind when the waiter has gone, and no subscription is kept.
- In the embedded default (no Redis: web and worker on one machine, sharing the data folder) the
  key is a file under DATA_DIR/replies, written whole (a temporary file renamed into place) and
  looked for by the waiter at intervals that grow with the wait. Celery's SQLite result backend
  was polled before: each poll an SQLAlchemy query of a few ms, and 16 requests waiting at once
  took a whole core of the web server's 2, leaving the model starved (6 rows/s at 32 callers).
  Looking for a file costs microseconds. An answer whose waiter has gone is swept later
  (`reply_sweep`, on the beat).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from portal.platform.exceptions import PortalError

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


T = TypeVar("T")


@dataclass(frozen=True)
class Awaited(Generic[T]):
    """What a service returns for work it stored and queued for a request that may wait on it: the
    stored row, and the reply key its worker answers on (None: nobody waits, e.g. a page that polls)."""

    stored: T
    reply_to: str | None


def reply_key() -> str:
    """A new reply key for one request."""
    return f"{PREFIX}{uuid.uuid4().hex}"


def _ttl() -> int:
    return int(settings.PREDICT_TIMEOUT_SECONDS) + 60  # a little longer than anyone waits


def _push(key: str, message: dict[str, Any]) -> None:
    data = json.dumps(message)
    if settings.REDIS_URL:
        _redis().pipeline(transaction=False).rpush(key, data).expire(key, _ttl()).execute()
        return
    path = _reply_path(key)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(data, encoding="utf-8")
    os.replace(partial, path)  # whole or not at all: the waiter never reads half an answer


# --- the embedded default's reply files ---------------------------------------------------------

_KEY = re.compile(re.escape(PREFIX) + r"([0-9a-f]{32})")


def _replies_dir() -> Path:
    folder = Path(settings.DATA_DIR) / "replies"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _reply_path(key: str) -> Path:
    matched = _KEY.fullmatch(key)
    if matched is None:  # a key comes in a task message: never a path of its own choosing
        raise ValueError(f"not a reply key: {key[:80]!r}")
    return _replies_dir() / f"{matched.group(1)}.json"


def _file_wait(key: str, timeout: float) -> str | None:
    """The reply file's text once it is there (then removed), or None after `timeout` seconds.

    It is looked for after 1 ms, then at a sixteenth of the time waited so far (at most 25 ms):
    an answer is seen within ~6% of its latency, and a wait of 100 ms looks about 45 times.
    """
    path = _reply_path(key)
    began = time.monotonic()
    while True:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            waited = time.monotonic() - began
            if waited >= timeout:
                return None
            time.sleep(min(max(waited / 16, 0.001), 0.025, timeout - waited))
            continue
        path.unlink(missing_ok=True)
        return text


def reply_sweep(*, older_than_seconds: float | None = None) -> int:
    """Removes reply files nobody took (the waiter timed out before the worker answered)."""
    if settings.REDIS_URL:
        return 0  # Redis expires them itself
    cutoff = time.time() - (_ttl() if older_than_seconds is None else older_than_seconds)
    removed = 0
    for path in _replies_dir().iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # taken meanwhile
            continue
    return removed


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
    """Web side: the answer put under `key`, waiting at most `timeout` seconds (0: only a look).

    Raises:
        ReplyTimeout: nothing came in time.
        WorkerFailed: the worker failed the request.
    """
    if settings.REDIS_URL:
        client = _redis()
        if timeout <= 0:  # a last look: BLPOP's timeout of 0 would wait for ever
            text = client.lpop(key)
        else:
            longest = client.connection_pool.connection_kwargs["socket_timeout"] - 10  # as the client was built
            found = client.blpop([key], timeout=min(timeout, longest))
            text = None if found is None else found[1]
    else:
        text = _file_wait(key, timeout)
    if text is None:
        raise ReplyTimeout(f"no answer within {timeout} s")
    message = json.loads(text)
    if "error" in message:
        raise WorkerFailed(**message["error"])
    return message["answer"]
