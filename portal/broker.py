"""Celery's brokers: kombu's transports, each with what Steward needs changed.

The embedded default's broker is kombu's SQLAlchemy transport on an SQLite file.

kombu's filesystem transport was tried first: under 32 concurrent requests its worker read a
message file before the writer had filled it and died (JSONDecodeError, "Unrecoverable error").
Rows in SQLite are written and read in transactions, so a half-written message cannot be seen.
The poll interval is a class attribute because the SQLAlchemy transport hands its transport
options to create_engine, which refuses `polling_interval`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport


class EmbeddedTransport(SQLAlchemyTransport):
    # Each poll is an SQLAlchemy query per queue: at 10 ms the poller took most of a core.
    polling_interval = 0.05


def register() -> None:
    """Makes `steward-sqla+sqlite:///...` broker URLs use this transport."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault("stewardsqla", "portal.broker:EmbeddedTransport")


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
        TRANSPORT_ALIASES[scheme] = "portal.broker:RedisTransport"
