"""A real Celery worker process for tests, pointed at the test database and the test broker."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from portal.platform.workers import worker_beats
from tests.waits import patience

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CeleryWorker:
    process: subprocess.Popen[bytes]
    hostname: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or ""
        auth = f"{user}:{db.get('PASSWORD')}@" if db.get("PASSWORD") else (f"{user}@" if user else "")
        env["DATABASE_URL"] = f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    else:
        env["SQLITE_PATH"] = str(db["NAME"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


_started = itertools.count()  # two workers of one name keep logs of their own


def start_worker(queues: str = "default,cpu", timeout: float | None = None, hostname: str = "") -> CeleryWorker:
    hostname = hostname or f"test-{os.getpid()}@localhost"
    log_path = Path(settings.DATA_DIR) / f"test-worker-{hostname.split('@')[0]}-{next(_started)}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "threads",
         "--concurrency", "4", "--queues", queues, "--hostname", hostname, "--loglevel", "INFO"],
        cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    worker = CeleryWorker(process=process, hostname=hostname, log_path=log_path)
    timeout = patience(60) if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited at start:\n{worker.log()[-3000:]}")
        beats = worker_beats()
        if any(beat.get("hostname") == hostname for beat in beats.values()):
            return worker
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"the Celery worker did not answer within {timeout} s:\n{worker.log()[-3000:]}")
