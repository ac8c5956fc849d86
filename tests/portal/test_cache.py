"""The Redis cache backend that keeps one client per connection pool (portal/platform/cache.py), on a real Redis."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from portal.platform.cache import SharedClientRedisCache

REDIS = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"


@pytest.fixture
def cache() -> SharedClientRedisCache:
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {REDIS}")
    return SharedClientRedisCache(REDIS, {"KEY_PREFIX": f"cache-test-{uuid.uuid4().hex}"})


def test_one_client_serves_every_call_and_the_cache_behaves_as_djangos(cache) -> None:
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is client and cache._cache.get_client("k", write=True) is client
    cache.set("a", {"n": 1}, 30)
    assert cache.get("a") == {"n": 1} and cache.get("missing", "default") == "default"
    assert cache.add("a", 2) is False
    assert cache.add("counter", 0) is True and cache.incr("counter") == 1
    assert cache.get_many(["a", "counter"]) == {"a": {"n": 1}, "counter": 1}
    cache.delete("a")
    assert cache.get("a") is None
    assert cache._cache.get_client() is client


def test_threads_share_the_client_without_mixing_answers(cache) -> None:
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(200):
            cache.set(f"t{n}", (n, i), 30)
            got = cache.get(f"t{n}")
            if got != (n, i):
                errors.append(f"thread {n} step {i} read {got}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [cache.get(f"t{n}") for n in range(8)] == [(n, 199) for n in range(8)]
