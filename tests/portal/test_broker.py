"""The Redis broker transport that keeps one client per channel pool (portal/platform/broker.py), on a real Redis."""

from __future__ import annotations

import os
import uuid

import pytest
from kombu import Connection

from portal.platform.broker import RedisTransport, SharedClientChannel

REDIS = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"


@pytest.fixture
def connection():
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {REDIS}")
    with Connection(REDIS) as conn:
        yield conn


def test_redis_urls_use_the_shared_client_transport(connection) -> None:
    import portal.celery  # noqa: F401  (registers the transports, as the web and the workers do)

    assert isinstance(connection.transport, RedisTransport)
    assert Connection("rediss://127.0.0.1:6379/5", ssl={"ssl_cert_reqs": "none"}).transport_cls == "rediss"
    assert Connection("rediss://127.0.0.1:6379/5", ssl={"ssl_cert_reqs": "none"}).transport.__class__ is RedisTransport


def test_a_channel_reuses_one_client_and_messages_go_through(connection) -> None:
    name = f"broker-test-{uuid.uuid4().hex}"
    channel = connection.default_channel
    assert isinstance(channel, SharedClientChannel)
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second
    queue = connection.SimpleQueue(name)
    try:
        for n in range(3):
            queue.put({"n": n})
        got = []
        for _ in range(3):
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        assert got == [0, 1, 2]
        with pytest.raises(queue.Empty):
            queue.get(block=False)
        with channel.conn_or_acquire() as again:
            assert again is first
        # a new pool (a reconnect) gets a new client
        channel._pool = None
        with channel.conn_or_acquire() as fresh:
            assert fresh is not first and fresh.connection_pool is channel.pool
    finally:
        queue.clear()
        queue.close()
