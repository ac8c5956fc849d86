"""Which inference queues have a live worker: workers beat into the cache, the web reads it.

A request for a queue without a live worker gets 503 at once instead of waiting for a timeout.
"""

from __future__ import annotations

import time

from django.core.cache import cache

HEARTBEAT_TTL = 15


def _key(queue: str) -> str:
    return f"worker-heartbeat:{queue}"


def worker_heartbeat(*, queues: list[str], device: str) -> None:
    now = time.time()
    cache.set_many({_key(q): {"at": now, "device": device} for q in queues}, timeout=HEARTBEAT_TTL)


def worker_alive(*, queue: str) -> bool:
    return cache.get(_key(queue)) is not None


def serving_queue() -> str | None:
    """The GPU pool where a GPU worker is alive, else the CPU pool; None when neither is."""
    for queue in ("gpu", "cpu"):
        if worker_alive(queue=queue):
            return queue
    return None
