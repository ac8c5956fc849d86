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

import asyncio
import json
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.utils.translation import gettext

from portal.platform.exceptions import PortalError

PREFIX = "steward:reply:"

_client: Any = None
_client_lock = threading.Lock()


class ReplyTimeout(CeleryTimeout):
    """No answer came within the wait (a subclass of Celery's, which the other path raises)."""


class WorkerFailed(PortalError):
    """The worker failed the request: its own error (a PortalError's status, code and message), or 500."""

    def __init__(self, *, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.status_code, self.code = status, code


class WorkerGone(Exception):
    """The worker serving a streamed request stopped beating: nothing more will come."""


def _redis() -> Any:
    """One client per process (redis-py's pool checks its pid, so a fork gets its own connections).

    Its socket timeout outlasts the longest wait (redis-py's default of 5 s would end a BLPOP that
    waits on a model's first load), and still ends a read from a Redis that went silent.
    """
    global _client
    if _client is None:
        import redis

        # Made once under a lock: threads that each made their own (a worker's first parts, written by
        # its task threads at once) dropped all but one, and a dropped client closes its pool, cutting
        # the connection another thread was reading ("'NoneType' object has no attribute 'readline'").
        with _client_lock:
            if _client is None:
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
        error = {"status": exc.status_code, "code": exc.code, "message": exc.message, "details": exc.details}
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
        raise ReplyTimeout(gettext('no answer within %(timeout)s s') % {"timeout": timeout})
    message = json.loads(text)
    if "error" in message:
        raise WorkerFailed(**message["error"])
    return message["answer"]


# --- streams: many parts, then the answer (tokens of a generation as they are made) --------------


class ReplyWriter:
    """Worker side of a streamed reply: parts in order, then the answer or the error.

    `cancelled()` tells whether the waiter has gone (the client disconnected): it looks at most every
    `look_every` seconds, so a token loop may ask after every token.
    """

    def __init__(self, key: str, *, look_every: float = 0.2) -> None:
        self.key, self.sequence, self.look_every = key, 0, look_every
        self._looked, self._cancelled = 0.0, False
        if not settings.REDIS_URL:
            _reply_path(key)  # refuses a key that is not one

    def part(self, data: Any) -> None:
        message = json.dumps({"part": data})
        if settings.REDIS_URL:
            _redis().pipeline(transaction=False).rpush(self.key, message).expire(self.key, _ttl()).execute()
        else:
            path = _part_path(self.key, self.sequence)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_text(message, encoding="utf-8")
            os.replace(partial, path)
        self.sequence += 1

    def answer(self, data: Any) -> None:
        reply_send(self.key, data)

    def fail(self, exc: BaseException, *, message: str) -> None:
        reply_fail(self.key, exc, message=message)

    def cancelled(self) -> bool:
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._looked < self.look_every:
            return False
        self._looked = now
        if settings.REDIS_URL:
            self._cancelled = bool(_redis().exists(_cancel_key(self.key)))
        else:
            self._cancelled = _cancel_path(self.key).exists()
        return self._cancelled


def _part_path(key: str, sequence: int) -> Path:
    return _reply_path(key).with_suffix(f".{sequence:06d}.part")


def _cancel_key(key: str) -> str:
    return f"{key}:cancel"


def _cancel_path(key: str) -> Path:
    return _reply_path(key).with_suffix(".cancel")


def reply_cancel(key: str) -> None:
    """Web side: nobody waits any more (the client went away); the worker stops at its next look."""
    if settings.REDIS_URL:
        _redis().set(_cancel_key(key), b"1", ex=_ttl())
    else:
        _cancel_path(key).touch()


class _StreamReading:
    """What a reader of a streamed reply keeps between messages, whichever way it waits (a thread
    for the synchronous reader, the event loop for the asynchronous one): the wait allowed for the
    next message, when it runs out, and which part comes next."""

    def __init__(self, first_timeout: float, gap_timeout: float, watched: bool, check_every: float) -> None:
        self.timeout, self.gap_timeout, self.sequence = first_timeout, gap_timeout, 0
        self.watched, self.check_every = watched, check_every
        self.deadline = 0.0

    def begin(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def wait(self) -> float:
        """How long the next look may wait: until the deadline, or until the worker is asked about."""
        left = self.deadline - time.monotonic()
        return max(0.01, min(left, self.check_every) if self.watched else left)

    def nothing(self) -> None:
        """A look found nothing. Raises ReplyTimeout when the wait has run out."""
        if time.monotonic() >= self.deadline:
            raise ReplyTimeout(gettext('no part within %(timeout)s s') % {"timeout": self.timeout})

    def took(self, text: str) -> tuple[str, Any]:
        message = json.loads(text)
        if "error" in message:
            raise WorkerFailed(**message["error"])
        if "answer" in message:
            return ("answer", message["answer"])
        self.sequence += 1
        self.timeout = self.gap_timeout
        return ("part", message["part"])


def reply_stream(key: str, *, first_timeout: float, gap_timeout: float, alive: Callable[[], bool] | None = None,
                 check_every: float = 2.0) -> Iterator[tuple[str, Any]]:
    """Web side: yields ("part", data) for each part, then ("answer", data) once.

    `first_timeout` bounds the wait for the first message (a model's first load), `gap_timeout`
    each later one. `alive`, asked every `check_every` seconds of silence, says whether the worker
    serving the request still beats: a worker that died is known in seconds, not at the timeout.

    Raises:
        ReplyTimeout: nothing came in time.
        WorkerFailed: the worker failed the request.
        WorkerGone: `alive` said the worker stopped.
    """
    reading = _StreamReading(first_timeout, gap_timeout, alive is not None, check_every)
    while True:
        reading.begin()
        while (text := _blpop_within(key, reading.wait()) if settings.REDIS_URL
               else _stream_file_wait(key, reading.sequence, reading.wait())) is None:
            reading.nothing()
            if alive is not None and not alive():
                raise WorkerGone(gettext('the worker serving this request stopped'))
        kind, data = reading.took(text)
        yield kind, data
        if kind == "answer":
            return


async def areply_stream(key: str, *, first_timeout: float, gap_timeout: float,
                        alive: Callable[[], Awaitable[bool]] | None = None,
                        check_every: float = 2.0) -> AsyncIterator[tuple[str, Any]]:
    """`reply_stream` on the event loop: a stream that waits holds no thread (the ASGI web server
    holds many idle streams at once). `alive` is awaited."""
    reading = _StreamReading(first_timeout, gap_timeout, alive is not None, check_every)
    while True:
        reading.begin()
        while (text := await _ablpop_within(key, reading.wait()) if settings.REDIS_URL
               else await _astream_file_wait(key, reading.sequence, reading.wait())) is None:
            reading.nothing()
            if alive is not None and not await alive():
                raise WorkerGone(gettext('the worker serving this request stopped'))
        kind, data = reading.took(text)
        yield kind, data
        if kind == "answer":
            return


async def areply_cancel(key: str) -> None:
    """`reply_cancel` on the event loop."""
    if settings.REDIS_URL:
        await _aredis().set(_cancel_key(key), b"1", ex=_ttl())
    else:
        _cancel_path(key).touch()


def _blpop_within(key: str, timeout: float) -> Any:
    """BLPOP for up to `timeout` seconds, in waits the client's socket timeout allows (a generation's
    first token may come after a model's first load, longer than a prediction's wait)."""
    client = _redis()
    longest = client.connection_pool.connection_kwargs["socket_timeout"] - 10  # as the client was built
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        found = client.blpop([key], timeout=max(0.01, min(left, longest)))
        if found is not None:
            return found[1]
        if time.monotonic() >= deadline:
            return None


_aclients: dict[Any, Any] = {}


def _aredis() -> Any:
    """One asyncio Redis client per event loop (a client's connections belong to the loop that made them)."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _aclients.get(loop)
    if client is None:
        for old in [old for old in _aclients if old.is_closed()]:
            del _aclients[old]
        client = _aclients[loop] = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=_longest_wait() + 10)
    return client


async def _ablpop_within(key: str, timeout: float) -> Any:
    client = _aredis()
    longest = _longest_wait()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        found = await client.blpop([key], timeout=max(0.01, min(left, longest)))
        if found is not None:
            return found[1]
        if time.monotonic() >= deadline:
            return None


def _stream_file_look(key: str, sequence: int) -> str | None:
    """The next part's file, else the answer's (the worker writes every part before the answer, so a
    part is looked for again once the answer is seen)."""
    part, final = _part_path(key, sequence), _reply_path(key)
    text = _take(part)
    if text is None and final.exists():
        text = _take(part)
        if text is None:
            text = _take(final)
    return text


def _file_pause(waited: float, timeout: float) -> float:
    return min(max(waited / 16, 0.001), 0.01, timeout - waited)


def _stream_file_wait(key: str, sequence: int, timeout: float) -> str | None:
    began = time.monotonic()
    while (text := _stream_file_look(key, sequence)) is None:
        waited = time.monotonic() - began
        if waited >= timeout:
            return None
        time.sleep(_file_pause(waited, timeout))
    return text


async def _astream_file_wait(key: str, sequence: int, timeout: float) -> str | None:
    began = time.monotonic()
    while (text := _stream_file_look(key, sequence)) is None:
        waited = time.monotonic() - began
        if waited >= timeout:
            return None
        await asyncio.sleep(_file_pause(waited, timeout))
    return text


def _take(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return text
