"""Runs the portal: the web server (gunicorn), a Celery worker and the beat scheduler.

One command for a single machine, as `make run` uses it. Ctrl-C stops both cleanly; if either
dies, the other is stopped too and the command fails, so nothing runs half of the product.

The children run in process groups of their own, so that a terminal's Ctrl-C (SIGINT to the whole
foreground group) reaches this command alone and each child then gets one orderly signal from
here. Signalled by the terminal as well as by gunicorn's master and this command, a gunicorn worker
could be interrupted inside its own exit and hang until the master killed it 20 s later (one stop
in a few, measured). On Linux the children are also told to stop if this command dies without
stopping them (SIGKILL, a crash), so that none is left behind holding the port.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int, death_signal: int) -> None:
    """Runs in each child between fork and exec: `death_signal` when the parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
        if os.getppid() != parent:  # the parent died before the line above: stop at once
            os._exit(1)


def _start(command: list[str], env: dict[str, str] | None = None, *,
           death_signal: int = signal.SIGTERM) -> subprocess.Popen[bytes]:
    parent = os.getpid()
    return subprocess.Popen(command, env=env, process_group=0,
                            preexec_fn=lambda: _child_setup(parent, death_signal))


def _device_queues() -> str:
    """The serving pool of this machine's device (WORKER_QUEUES overrides): `gpu` where CUDA is,
    which the web prefers while a GPU worker beats (portal/platform/workers.py), else `cpu`."""
    import torch

    return "default,gpu" if torch.cuda.is_available() else "default,cpu"


def _generation_queues() -> str:
    import torch

    return "gen-gpu" if torch.cuda.is_available() else "gen-cpu"


class Command(BaseCommand):
    help = "Runs the web server and a Celery worker together (Ctrl-C stops both)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument("--worker-concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "32")))

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        # The ASGI application under gunicorn's process management (portal/gunicorn_worker.py): a
        # streamed completion waits on the event loop; a synchronous view (a prediction, which
        # waits for the worker) holds a thread of its own while it runs, as Django's ASGI handler
        # runs it, so concurrent callers still meet in the model's batch. Its database connections
        # come from a pool (DB_POOL): threads made per request would each open one otherwise.
        web = [
            python, "-m", "gunicorn", "portal.asgi:application",
            "--bind", f"{options['host']}:{options['port']}",
            "--workers", str(options["web_workers"]),
            "--worker-class", "portal.gunicorn_worker.AsgiWorker",
            "--timeout", "120", "--graceful-timeout", "20",
            "--access-logfile", "-", "--log-level", settings.LOG_LEVEL.lower(),
        ]
        worker = [
            # Threads, not processes: one copy of each model per worker, and concurrent requests
            # meet in its dynamic batcher. torch releases the GIL while it computes.
            python, "-m", "celery", "-A", "portal", "worker", "--pool", "threads",
            "--queues", os.environ.get("WORKER_QUEUES") or _device_queues(),
            "--concurrency", str(options["worker_concurrency"]),
            "--loglevel", settings.LOG_LEVEL,
        ]
        # Several worker processes split the cores between them (torch threads each), so that
        # Celery's per-task work in one process's main thread does not cap throughput.
        count = int(os.environ.get("WORKER_PROCESSES", "1"))
        threads = max(1, (os.cpu_count() or 1) // count)
        processes: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False
        signals = 0

        def stop(signum: int, frame: Any) -> None:
            # The first Ctrl-C stops gracefully (requests and tasks in hand finish); a second
            # one stops at once (gunicorn's quick shutdown, Celery's cold shutdown: a task cut
            # off is delivered again, as tasks are acknowledged late).
            nonlocal stopping, signals
            stopping = True
            signals += 1
            if signals > 1:
                self.stderr.write("Stopping now.")
                for process in processes.values():
                    if process.poll() is None:
                        process.send_signal(signal.SIGQUIT)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        # Beat in a process of its own, not the worker's embedded one: a worker killed with SIGKILL
        # left its embedded beat (a child of its own) running, and after a restart two schedulers
        # sent every periodic task twice. Like every child here, it stops when serve dies.
        beat = [
            python, "-m", "celery", "-A", "portal", "beat", "--scheduler", "portal.beat:SingleScheduler",
            "--schedule", str(settings.DATA_DIR / "celerybeat-schedule"), "--loglevel", settings.LOG_LEVEL,
        ]
        # A Celery process whose serve died stops at once (SIGQUIT: cold shutdown; a task cut off is
        # delivered again): on SIGTERM a worker finishes what it holds, and with nobody left to stop
        # it, a worker holding three explanations (minutes each) ran on alone after CI's serve died.
        celery_death = signal.SIGQUIT
        processes["beat"] = _start(beat, death_signal=celery_death)
        for n in range(count):
            command = [*worker, "--hostname", f"worker{n}@{os.uname().nodename}"]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            # The web server, the database and the worker's own threads share these cores with the
            # model's OpenMP threads. OpenMP's default has a thread that waits at a barrier for its
            # peer (descheduled by one of them) spin on the core instead of yielding it: under 32
            # callers on 2 cores the model spent 14.6 ms of CPU a row against 11.3 when they sleep
            # (9.9 alone), and served 77 rows/s against 83. At concurrency 1 no difference showed.
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            processes[f"worker{n}"] = _start(command, env, death_signal=celery_death)
        # Generative models in a worker process of their own: one continuous batch per model, whose
        # torch threads (GENERATION_THREADS) are set for the process; each request it serves holds
        # one of its threads while it generates, so it has as many as streams it may serve at once.
        generation = [
            python, "-m", "celery", "-A", "portal", "worker", "--pool", "threads",
            "--queues", os.environ.get("GENERATION_QUEUES") or _generation_queues(),
            "--concurrency", os.environ.get("GENERATION_CONCURRENCY", "64"),
            "--hostname", f"generation@{os.uname().nodename}", "--loglevel", settings.LOG_LEVEL,
        ]
        threads_env = str(settings.GENERATION_THREADS)
        processes["generation"] = _start(generation, {**os.environ, "OMP_NUM_THREADS": threads_env,
                                                      "MKL_NUM_THREADS": threads_env, "OMP_WAIT_POLICY": "PASSIVE"},
                                         death_signal=celery_death)
        processes["web"] = _start(web, {**os.environ, "DB_POOL": os.environ.get("DB_POOL", "true")})
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"Steward is starting at {url}  (Ctrl-C stops it)"))

        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with {process.returncode}; stopping Steward")
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.3)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        self.stdout.write("Steward stopped.")
        if exit_code:
            sys.exit(exit_code)
