"""Which pool serves: workers beat into the cache, the web reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from portal.workers import serving_queue, worker_alive, worker_heartbeat


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


@pytest.mark.django_db(transaction=True)
def test_waiting_for_a_result_that_never_comes_times_out_and_polls_sparingly() -> None:
    """On a polling result backend (the embedded default) the interval grows with the wait; on
    Redis the waiter is woken by pub/sub. Either way the wait ends at its timeout."""
    import time
    import uuid

    from celery.backends.asynchronous import AsyncBackendMixin
    from celery.exceptions import TimeoutError as CeleryTimeout

    from portal.celery import app
    from portal.workers import task_result

    backend = app.backend
    calls = [0]
    real = backend.get_task_meta

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    backend.get_task_meta = counted
    try:
        began = time.monotonic()
        with pytest.raises(CeleryTimeout):
            task_result(uuid.uuid4().hex, timeout=1.0)
        waited = time.monotonic() - began
    finally:
        del backend.get_task_meta
    assert 1.0 <= waited < 1.5
    if not isinstance(backend, AsyncBackendMixin):
        # at a fixed 5 ms this would be some 200 queries; growing with the wait, about 30
        assert 5 <= calls[0] <= 45, calls[0]
