"""Which queues have a live worker: workers beat into the cache, the web reads it.

A request for a queue without a live worker gets 503 at once instead of waiting for a timeout,
and /healthz reports the same thing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.core.cache import cache
from django.dispatch import Signal

HEARTBEAT_TTL = 30  # a worker busy compiling (numba, on its first explanation) may not beat for seconds
QUEUES = ("default", "cpu", "gpu", "gen-cpu", "gen-gpu")


def _key(queue: str) -> str:
    return f"worker-heartbeat:{queue}"


def worker_heartbeat(*, queues: list[str], device: str, hostname: str) -> None:
    now = time.time()
    beat = {"at": now, "device": device, "hostname": hostname}
    cache.set_many({_key(q): beat for q in queues}, timeout=HEARTBEAT_TTL)


def worker_beats() -> dict[str, dict[str, Any]]:
    found = cache.get_many([_key(q) for q in QUEUES])
    return {key.split(":", 1)[1]: value for key, value in found.items()}


def worker_alive(*, queue: str) -> bool:
    return cache.get(_key(queue)) is not None


def serving_queue() -> str | None:
    """The GPU pool where a GPU worker is alive, else the CPU pool; None when neither is."""
    alive = cache.get_many([_key("gpu"), _key("cpu")])  # one round trip on every prediction
    for queue in ("gpu", "cpu"):
        if _key(queue) in alive:
            return queue
    return None


def generation_queue() -> str | None:
    """The generative models' pool: a worker process of their own (GENERATION_THREADS torch threads),
    on the GPU where one beats; None when no such worker is alive."""
    alive = cache.get_many([_key("gen-gpu"), _key("gen-cpu")])
    for queue in ("gen-gpu", "gen-cpu"):
        if _key(queue) in alive:
            return queue
    return None


def current_worker() -> str:
    """The name of the Celery worker running the current task (its hostname, as `celery -n` gave
    it), or "" outside a task."""
    from celery import current_task

    return getattr(getattr(current_task, "request", None), "hostname", None) or ""


# --- the worker side -----------------------------------------------------------------------
logger = logging.getLogger("steward.worker")
_stop = threading.Event()


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads)"


NAME_BEAT_SECONDS = 2.0  # how often a worker renews the claim on its name


def _name_key(hostname: str) -> str:
    return f"worker-name:{hostname}"


@worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    queues = sorted(q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", []))
    hostname = getattr(sender, "hostname", "") or "worker"
    device = device_description()
    logger.info("worker %s ready on %s, queues %s", hostname, device, ", ".join(queues))
    threading.Thread(target=_beat, args=(hostname, queues, device), name="worker-heartbeat", daemon=True).start()


def _beat(hostname: str, queues: list[str], device: str) -> None:
    """The worker's heartbeats: its queues' (every HEARTBEAT_TTL / 3), and once it has made sure
    no live worker bears its name, the claim on that name (every NAME_BEAT_SECONDS)."""
    me, last_queues = uuid.uuid4().hex, float("-inf")
    owner: bool | None = None  # not settled yet, or the cache could not be read: settled next beat
    while not _stop.is_set():
        try:
            if time.monotonic() - last_queues >= HEARTBEAT_TTL / 3:  # first: serving starts at once
                worker_heartbeat(queues=queues, device=device, hostname=hostname)
                last_queues = time.monotonic()
            if owner:
                _claim(hostname, me)
        except Exception:  # the cache may blink; the next beat tries again
            logger.warning("worker heartbeat failed", exc_info=True)
        if owner is None:  # settling the name may take a few beats
            owner = _name_settle(hostname, me)
        _stop.wait(NAME_BEAT_SECONDS)
    if owner:
        cache.delete(_name_key(hostname))  # a clean stop: a restart need not wait to take the name


class WorkerWatch:
    """Whether a named worker still lives, judged as a worker judges its own name (`_name_settle`):
    a live worker renews its claim on its name every NAME_BEAT_SECONDS, so a claim that has not
    changed for five beats belongs to a worker that stopped, and one absent for longer than a new
    worker takes to settle its name and a dead one's claim to expire means none holds it. Changes are
    timed on this process's monotonic clock: no clock of another host is compared with ours."""

    def __init__(self, hostname: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hostname, self.clock = hostname, clock
        self.seen: Any = object()  # nothing seen yet: the first look counts as a change
        self.changed_at = 0.0

    def alive(self) -> bool:
        claim = cache.get(_name_key(self.hostname))
        now = self.clock()
        if claim != self.seen:
            self.seen, self.changed_at = claim, now
        quiet = now - self.changed_at
        return quiet <= (2 * HEARTBEAT_TTL if claim is None else 5 * NAME_BEAT_SECONDS)


def _claim(hostname: str, me: str) -> None:
    cache.set(_name_key(hostname), {"by": me, "at": time.time()}, timeout=HEARTBEAT_TTL)


def _name_settle(hostname: str, me: str) -> bool | None:
    """Whether this worker owns its name, after requeueing the jobs its previous run left RUNNING.

    A worker's jobs record its name, and a worker that starts again under that name takes back the
    ones still RUNNING: its previous run was killed. That holds only if no other live worker bears
    the name. The name's claim in the cache is renewed every NAME_BEAT_SECONDS by its owner: a claim
    left by a dead run stops changing, and after a few beats this worker takes it; one that keeps
    changing belongs to a live worker of the same name (two hosts, or two workers, given one `-n`),
    and this worker then takes back nothing and says so. None: the cache could not be read.
    """
    key = _name_key(hostname)
    try:
        seen = cache.get(key)
        deadline = time.monotonic() + 2.5 * NAME_BEAT_SECONDS
        while seen is not None and time.monotonic() < deadline and not _stop.is_set():
            _stop.wait(NAME_BEAT_SECONDS / 4)
            now = cache.get(key)
            if now is not None and now != seen:
                logger.error(
                    "another live worker is named %s: this one takes back none of the jobs left running "
                    "under that name, and both should be given names of their own (celery worker -n)", hostname)
                return False
            seen = now
        _claim(hostname, me)
    except Exception:
        logger.warning("the claim on the worker name %s could not be read", hostname, exc_info=True)
        return None
    _requeue_orphans(hostname)
    return True


# Sent (hostname=) once a starting worker owns its name: what its previous run left RUNNING was
# cut off. The job framework (portal/jobs.py) requeues those jobs; the platform knows no jobs.
worker_restarted = Signal()


def _requeue_orphans(hostname: str) -> None:
    from django.db import connection

    try:
        worker_restarted.send_robust(sender=None, hostname=hostname)
    finally:  # the heartbeat thread's only use of the database: its connection is not kept idle
        connection.close()


@worker_shutdown.connect
def _worker_shutdown(**kwargs: Any) -> None:
    _stop.set()
