"""The periodic-task scheduler `serve` runs: Celery beat's persistent scheduler, one at a time.

Two schedulers on one schedule send every periodic task twice. `serve` runs beat as a process of
its own (told to stop if `serve` dies), and this scheduler holds an exclusive lock on a file beside
its schedule for its whole life: a second one started on the same data folder refuses to run and
says why. The kernel drops the lock with the process, however it ends.
"""

from __future__ import annotations

import fcntl
import logging
from typing import Any

from celery.beat import PersistentScheduler

logger = logging.getLogger("steward.beat")


class SingleScheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        schedule = kwargs.get("schedule_filename") or "celerybeat-schedule"
        self._lock = open(f"{schedule}.lock", "a")  # noqa: SIM115 (held open for the process's life)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another beat scheduler is running on {schedule}; not starting a second one") from None
        super().__init__(*args, **kwargs)
