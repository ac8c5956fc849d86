"""Which pool serves: workers beat into the cache, the web reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from portal.platform.workers import serving_queue, worker_alive, worker_heartbeat


@pytest.fixture
def fresh_cache(settings) -> Iterator[None]:
    cache.key_prefix = "workers-test"  # no heartbeat of a real worker is seen here
    try:
        cache.delete_many(["worker-heartbeat:gpu", "worker-heartbeat:cpu", "worker-heartbeat:default"])
        yield
    finally:
        cache.delete_many(["worker-heartbeat:gpu", "worker-heartbeat:cpu", "worker-heartbeat:default"])
        cache.key_prefix = settings.CACHES["default"]["KEY_PREFIX"]


def test_no_live_worker_means_no_serving_pool(fresh_cache) -> None:
    assert serving_queue() is None


def test_the_cpu_pool_serves_where_no_gpu_worker_beats(fresh_cache) -> None:
    worker_heartbeat(queues=["default", "cpu"], device="cpu (2 threads)", hostname="w1@host")
    assert serving_queue() == "cpu" and worker_alive(queue="default") and not worker_alive(queue="gpu")


def test_a_live_gpu_worker_takes_the_serving(fresh_cache) -> None:
    worker_heartbeat(queues=["default", "cpu"], device="cpu (2 threads)", hostname="w1@host")
    worker_heartbeat(queues=["gpu"], device="cuda:0 (H100)", hostname="w2@host")
    assert serving_queue() == "gpu"


