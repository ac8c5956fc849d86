"""`manage.py serve` (what `make run` runs): the web server and a worker start together and stop
together, on Ctrl-C and when the command itself dies, leaving nothing behind."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waits import patience
from tests.worker import ROOT, worker_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


@pytest.fixture
def serving(django_db_setup, tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`manage.py serve` started as a terminal starts it: the leader of its own process group."""
    port = _free_port()
    log_path = tmp_path / "serve.log"
    env = {**worker_env(), "STEWARD_DATA_DIR": str(tmp_path), "WEB_CONCURRENCY": "2",
           "WORKER_CONCURRENCY": "2"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    last = b""
    try:
        deadline = time.monotonic() + patience(90)
        while True:
            assert process.poll() is None, f"serve exited at start:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"/healthz never answered 200: {last!r}\n{log_path.read_text()[-3000:]}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                answer = conn.getresponse()
                last = answer.read()
                if answer.status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        started = _descendants(process.pid)
        yield process, port, log_path
    finally:
        # Children are remembered from the start: a child orphaned by a failing test is no
        # longer a descendant of `serve`, and must not outlive the test either.
        for pid in _alive(_descendants(process.pid) | started | {process.pid}):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_stops_the_web_server_and_the_worker_and_frees_the_port(serving) -> None:
    process, port, log_path = serving
    children = _descendants(process.pid)
    assert len(children) >= 4, "expected gunicorn's master and 2 workers and a Celery worker"

    os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole foreground group

    assert process.wait(timeout=25) == 0, log_path.read_text()[-3000:]
    assert not _wait_gone(children, 5), f"left running after Ctrl-C:\n{log_path.read_text()[-3000:]}"
    log = log_path.read_text()
    assert "Steward stopped." in log and "SIGKILL" not in log, log[-3000:]
    with socket.socket() as s:  # nothing listens on the port: a new server can bind it, as gunicorn does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


@pytest.mark.slow
def test_the_worker_gets_the_cores_and_lets_torch_threads_sleep_while_they_wait(serving) -> None:
    from django.conf import settings

    process, _port, _log_path = serving
    workers = {}
    for pid in _alive(_descendants(process.pid)):  # serve's own children, not beat
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"worker" in command and _parent(pid) == process.pid:
            workers[b"gen-cpu" in command or b"gen-gpu" in command] = pid
    assert len(workers) == 2  # the serving pool's worker and the generation pool's
    environ = _environ(workers[False])
    assert environ["OMP_NUM_THREADS"] == str(os.cpu_count())
    assert environ["OMP_WAIT_POLICY"] == "PASSIVE"  # serve's default; an operator's own value wins
    # the generation worker decodes with GENERATION_THREADS (one decodes faster than two on 2 shared cores)
    assert _environ(workers[True])["OMP_NUM_THREADS"] == str(settings.GENERATION_THREADS)


@pytest.mark.slow
def test_the_web_server_and_the_worker_stop_when_serve_itself_is_killed(serving) -> None:
    process, _port, log_path = serving
    children = _descendants(process.pid)

    process.kill()  # no chance to stop its children: they must notice on their own
    process.wait(timeout=5)

    assert not _wait_gone(children, 30), f"orphans left running:\n{log_path.read_text()[-3000:]}"


@pytest.mark.slow
def test_the_worker_serves_the_pool_of_this_machines_device(serving) -> None:
    import json

    import torch

    # given: serve started without WORKER_QUEUES
    _, port, _ = serving
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    # when
    conn.request("GET", "/healthz")
    worker = json.loads(conn.getresponse().read())["checks"]["worker"]
    # then: the pool of the device it runs its models on, which the web then sends predictions to
    device_pool, other = ("gpu", "cpu") if torch.cuda.is_available() else ("cpu", "gpu")
    assert device_pool in worker["queues"] and other not in worker["queues"] and "default" in worker["queues"]


@pytest.mark.slow
def test_a_worker_killed_outright_stops_steward_and_leaves_no_scheduler_behind(serving) -> None:
    """kill -9 of the worker once left its embedded beat running (ppid 1): two schedulers after a restart."""
    process, _port, log_path = serving
    children = _descendants(process.pid)
    # worker0 by its hostname: the generation worker is a "celery worker" child of serve too
    worker = next(pid for pid in _alive(children) if _parent(pid) == process.pid
                  and any(arg.startswith(b"worker0@") for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")))
    os.kill(worker, signal.SIGKILL)
    assert process.wait(timeout=60) != 0, log_path.read_text()[-3000:]  # serve says it stopped, and why
    assert not _wait_gone(children, 30), f"left running:\n{log_path.read_text()[-3000:]}"
    assert "worker0 exited" in log_path.read_text()


def test_a_second_scheduler_on_the_same_schedule_refuses_to_start(tmp_path) -> None:
    from portal.beat import SingleScheduler
    from portal.celery import app

    first = SingleScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    with pytest.raises(SystemExit, match="another beat scheduler"):
        SingleScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    first._lock.close()  # the lock goes with its holder
    SingleScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)._lock.close()


def _exchange(port: int, request: bytes) -> tuple[bytes, bytes]:
    """The server's whole answer to raw bytes: its head and its body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(request)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.slow
def test_requests_the_server_refuses_get_the_error_shape_and_pages_get_a_content_security_policy(serving) -> None:
    import json

    _, port, _ = serving
    head, body = _exchange(port, b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), head
    assert b"Content-Type: application/json" in head
    assert set(json.loads(body)["error"]) == {"code", "message", "details"}
    head, body = _exchange(port, b"GET /api/v1/me?q=" + b"a" * 5_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and json.loads(body)["error"]["code"] == "uri_too_long", head
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/me")  # (this data folder has no collected static files for pages)
    response = conn.getresponse()
    policy = response.getheader("Content-Security-Policy") or ""
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
