"""Worker start-up: log the device, and beat into the cache so that the web knows we are alive."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

logger = logging.getLogger("steward.inference")
_stop = threading.Event()


@worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    from inference.ml.device import device_description
    from inference.services.workers import HEARTBEAT_TTL, worker_heartbeat

    queues = sorted(q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", []))
    device = device_description()
    logger.info("inference worker ready on %s, queues %s", device, ", ".join(queues))

    def beat() -> None:
        while not _stop.is_set():
            try:
                worker_heartbeat(queues=queues, device=device)
            except Exception:  # the cache may blink; the next beat tries again
                logger.warning("worker heartbeat failed", exc_info=True)
            _stop.wait(HEARTBEAT_TTL / 3)

    threading.Thread(target=beat, name="worker-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _worker_shutdown(**kwargs: Any) -> None:
    _stop.set()
