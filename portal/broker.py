"""The embedded default's Celery broker: kombu's SQLAlchemy transport on an SQLite file.

kombu's filesystem transport was tried first: under 32 concurrent requests its worker read a
message file before the writer had filled it and died (JSONDecodeError, "Unrecoverable error").
Rows in SQLite are written and read in transactions, so a half-written message cannot be seen.
The poll interval is a class attribute because the SQLAlchemy transport hands its transport
options to create_engine, which refuses `polling_interval`.
"""

from __future__ import annotations

from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport


class EmbeddedTransport(SQLAlchemyTransport):
    # Each poll is an SQLAlchemy query per queue: at 10 ms the poller took most of a core.
    polling_interval = 0.05


def register() -> None:
    """Makes `steward-sqla+sqlite:///...` broker URLs use this transport."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault("stewardsqla", "portal.broker:EmbeddedTransport")
