"""Which pool serves: workers beat into the cache, the web reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from portal.workers import SweepsFailed, job_sweeps_run, serving_queue, worker_alive, worker_heartbeat


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


# --- the job sweeps: one list, run each minute and by a worker as it starts ---------------------

swept: list[str] = []


def sweep_ok(*, orphaned_by: str = "") -> int:
    swept.append(f"ok:{orphaned_by}")
    return 2


def sweep_broken(*, orphaned_by: str = "") -> int:
    raise RuntimeError("the table is locked")


@pytest.mark.django_db
def test_every_configured_sweep_runs_and_says_how_many_it_requeued() -> None:
    from django.conf import settings

    from portal.celery import app

    found = job_sweeps_run()
    assert set(found) == {path.rsplit(".", 1)[1] for path in settings.WORKER_JOB_SWEEPS}
    assert set(found.values()) == {0}  # nothing is stuck in an empty database
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    app.loader.import_default_modules()  # what a worker does as it starts: the apps' tasks modules
    assert "portal.tasks.job_sweeps_task" in schedule and "portal.tasks.job_sweeps_task" in app.tasks


def test_a_failing_sweep_is_reported_after_the_others_have_run(settings, caplog) -> None:
    settings.WORKER_JOB_SWEEPS = [f"{__name__}.sweep_broken", f"{__name__}.sweep_ok"]
    swept.clear()
    with pytest.raises(SweepsFailed, match="sweep_broken"):
        job_sweeps_run(orphaned_by="worker0@host")
    assert swept == ["ok:worker0@host"]
    assert "the job sweep tests.portal.test_workers.sweep_broken failed (for worker0@host)" in caplog.text
