"""Celery's brokers: kombu's transports, each with what Steward needs changed.

The embedded default's broker is kombu's SQLAlchemy transport on an SQLite file.

kombu's filesystem transport was tried first: under 32 concurrent requests its worker read a
message file before the writer had filled it and died (JSONDecodeError, "Unrecoverable error").
Rows in SQLite are written and read in transactions, so a half-written message cannot be seen.
The poll interval is a class attribute because the SQLAlchemy transport hands its transport
options to create_engine, which refuses `polling_interval`. A publish wakes the consumers at once
(`Doorbell`), so the polls are only a safety net.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.sqlalchemy import Channel as SQLAlchemyChannel
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

logger = logging.getLogger("steward.broker")


class Doorbell:
    """Wakes the embedded broker's consumers when a message is published, instead of their next poll.

    kombu's SQLAlchemy transport finds a message by polling its tables; at 50 ms between polls a
    task waited 25 ms on average before a worker saw it, most of the embedded default's latency
    at concurrency 1 (and polling more often cost a core). Each consuming process binds a Unix
    datagram socket in a folder beside the broker's database and waits on it between polls; a
    publisher sends one byte to every socket there after its message is committed. The polls go
    on, further apart, in case a ring is lost: they are what delivers, the bell only says when.
    A socket whose process died refuses the byte and is removed. Web and worker share the data
    folder on one machine, as the embedded default requires.
    """

    RESCAN_SECONDS = 1.0  # how long a publisher trusts its list of sockets

    def __init__(self, database: str) -> None:
        self.folder = Path(database).resolve().parent / "bells" if database else None
        self._own: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._known: list[str] = []
        self._scanned = 0.0
        self._lock = threading.Lock()

    def listen(self) -> socket.socket | None:
        """This process's socket, bound on first use (None where none can be: the polls serve)."""
        if self._own is not None or self.folder is None:
            return self._own
        path = self.folder / str(os.getpid())
        if len(os.fsencode(path)) > 100:  # sun_path holds 104 to 108 bytes
            logger.info("broker doorbell off: %s is too long a socket path; polling only", path)
            self.folder = None
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        own = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path.unlink(missing_ok=True)  # a socket left by an earlier process of this pid
        own.bind(str(path))
        own.setblocking(False)
        self._own = own
        atexit.register(self.close)
        return own

    def wait(self, seconds: float) -> None:
        """Until a ring, or `seconds`."""
        own = self.listen()
        if own is None:
            time.sleep(seconds)
            return
        if select.select([own], [], [], seconds)[0]:
            try:
                while own.recv(64):  # every ring so far: one poll answers them all
                    pass
            except BlockingIOError:
                pass

    def ring(self) -> None:
        """Tells every listening process that a message is waiting."""
        if self.folder is None:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._scanned > self.RESCAN_SECONDS:
                try:
                    self._known = [str(entry) for entry in self.folder.iterdir() if entry.name.isdigit()]
                except FileNotFoundError:
                    self._known = []
                self._scanned = now
            if self._sender is None:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            for path in list(self._known):
                try:
                    self._sender.sendto(b"!", path)
                except BlockingIOError:
                    pass  # its queue of rings is full: it is awake already
                except (ConnectionRefusedError, FileNotFoundError):  # its process is gone
                    self._known.remove(path)
                    if not path.endswith(f"/{os.getpid()}"):
                        Path(path).unlink(missing_ok=True)
                except OSError:
                    pass

    def close(self) -> None:
        if self._own is not None and self.folder is not None:
            (self.folder / str(os.getpid())).unlink(missing_ok=True)
            self._own.close()
            self._own = None


_bells: dict[str, Doorbell] = {}


def doorbell(database: str) -> Doorbell:
    """One per broker database in a process (a fork gets its own: the socket is named by pid)."""
    key = f"{os.getpid()}:{database}"
    if key not in _bells:
        _bells[key] = Doorbell(database)
    return _bells[key]


def _database(url: str) -> str:
    """The SQLite file of an `sqlite:///path` broker URL, or "" for any other database."""
    return url.split(":///", 1)[1].split("?", 1)[0] if url.startswith("sqlite:///") else ""


class EmbeddedChannel(SQLAlchemyChannel):
    def _engine_from_config(self) -> Any:
        """kombu's engine, with SQLite in write-ahead-log mode and NORMAL syncing, as the embedded
        default's own database is (portal/settings.py). SQLite's default rollback journal synced
        the disk several times a commit: 3.7 ms to publish a message and 3.4 ms to take one on
        this 2-core VM. A commit in WAL mode is not synced: a power cut can lose the last
        messages, which a machine that only tries Steward out can afford; production uses Redis."""
        from sqlalchemy import event

        engine = super()._engine_from_config()
        if engine.dialect.name == "sqlite":
            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        return engine

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's bases disagree
        super()._put(queue, payload, **kwargs)
        doorbell(_database(self.connection.client.hostname or "")).ring()

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """kombu's take, except that the message's row is deleted rather than kept invisible: kombu never
        reads a taken row again, and a task's message may carry what must not be kept (a completion's
        raw prompt). A message taken and not acknowledged is put back by kombu, from its own memory."""
        from kombu.transport.virtual import Empty
        from kombu.utils.encoding import bytes_to_str
        from kombu.utils.json import loads
        from sqlalchemy import text

        found = self._get_or_create(queue)
        if self.session.bind.name == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            message = (self.session.query(self.message_cls).with_for_update()
                       .filter(self.message_cls.queue_id == found.id).filter(self.message_cls.visible != False)  # noqa: E712
                       .order_by(self.message_cls.sent_at).order_by(self.message_cls.id).limit(1).first())
            if message is None:
                raise Empty()
            payload = loads(bytes_to_str(message.payload))
            self.session.delete(message)
            return payload
        finally:
            self.session.commit()


class EmbeddedTransport(SQLAlchemyTransport):
    """kombu's SQLAlchemy transport with a doorbell: a consumer polls, and is woken by a publish."""

    Channel = EmbeddedChannel
    # Each poll is an SQLAlchemy query per queue: at 10 ms the poller took most of a core. With
    # the doorbell, a poll between rings only covers a ring that was lost.
    polling_interval = 0.5

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """kombu's loop (virtual.Transport.drain_events), waiting on the doorbell between polls."""
        from queue import Empty

        began = time.monotonic()
        bell = doorbell(_database(getattr(self.client, "hostname", "") or ""))
        assert self.cycle is not None  # made with the first channel
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                waited = time.monotonic() - began
                if timeout is not None and waited >= timeout:
                    raise TimeoutError() from None  # socket.timeout, as kombu's loop raises
                pause = self.polling_interval if timeout is None else min(self.polling_interval, timeout - waited)
                bell.wait(max(pause, 0.0))


def register() -> None:
    """Makes `steward-sqla+sqlite:///...` broker URLs use this transport."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault("stewardsqla", "portal.platform.broker:EmbeddedTransport")


# --- Redis: the production broker -------------------------------------------------------------

class SharedClientChannel(kombu_redis.Channel):
    """kombu's Redis channel, with one client for its commands instead of one per command.

    kombu builds a new `redis.Redis` for every publish, ack and queue operation made outside a
    pipeline (`conn_or_acquire`), and building one costs more than the LPUSH it sends: under a
    profiler, 0.9 of the 2.2 ms a prediction's publish took. A client over the channel's pool is
    thread-safe (each command takes a connection from the pool), so one is kept per pool; the
    pool is the channel's own and is rebuilt on reconnect, and a new pool gets a new client.
    """

    _shared: tuple[Any, Any] | None = None  # (pool, client)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        shared = self._shared
        if shared is None or shared[0] is not pool:
            shared = self._shared = (pool, self._create_client())
        yield shared[1]


class RedisTransport(kombu_redis.Transport):
    Channel = SharedClientChannel


def register_redis() -> None:
    """Makes `redis://` and `rediss://` broker URLs use RedisTransport in this process."""
    from kombu.transport import TRANSPORT_ALIASES

    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = "portal.platform.broker:RedisTransport"
