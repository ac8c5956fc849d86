"""The embedded default's broker (kombu's SQLAlchemy transport on SQLite, portal/platform/broker.py): a
publish rings a doorbell that wakes the consuming processes, instead of their next poll."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import Connection

from portal.platform.broker import Doorbell, EmbeddedTransport, register
from tests.worker import ROOT

CONSUMER = """
import json, sys, time
from kombu import Connection
from portal.platform.broker import register
register()
with Connection(sys.argv[1]) as conn:
    queue = conn.SimpleQueue("bell-test")
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        message = queue.get(timeout=30)
        print(json.dumps({"latency": time.time() - message.payload["sent"]}), flush=True)
        message.ack()
"""


@pytest.fixture
def broker(tmp_path) -> str:
    register()
    return f"stewardsqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


def test_a_publish_wakes_a_consumer_in_another_process_long_before_its_next_poll(broker, tmp_path) -> None:
    # given: a consumer process waiting between polls half a second apart
    assert EmbeddedTransport.polling_interval >= 0.5
    with Connection(broker) as conn:
        conn.SimpleQueue("bell-test").close()  # the tables, before two processes race to make them
    consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, broker, "5"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout is not None and consumer.stdout.readline().strip() == "ready", consumer.stderr
        bells = tmp_path / "bells"
        deadline = time.monotonic() + 20
        while not (bells.exists() and any(bells.iterdir())):  # it is listening once it has polled once
            assert time.monotonic() < deadline and consumer.poll() is None, consumer.stderr
            time.sleep(0.05)
        time.sleep(Doorbell.RESCAN_SECONDS + 0.2)
        # when: messages are published while it waits
        with Connection(broker) as conn:
            queue = conn.SimpleQueue("bell-test")
            for _ in range(5):
                time.sleep(0.3)  # it is back waiting on the bell
                queue.put({"sent": time.time()})
        latencies = [json.loads(consumer.stdout.readline())["latency"] for _ in range(5)]
        # then: each is taken at once; by the polls alone they would wait 0.25 s on average, up to 0.5 s
        assert max(latencies) < 0.2 and statistics.median(latencies) < 0.1, latencies
        assert consumer.wait(timeout=10) == 0
    finally:
        consumer.kill()
    # its socket is gone with it
    assert not any((tmp_path / "bells").iterdir())


def test_a_socket_left_by_a_dead_process_is_removed_by_the_next_ring(tmp_path) -> None:
    bells = tmp_path / "bells"
    bells.mkdir()
    dead = bells / "999999999"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    leftover.bind(str(dead))
    leftover.close()  # bound and closed: its file stays, nobody reads it
    bell = Doorbell(str(tmp_path / "broker.sqlite3"))
    bell.ring()
    assert not dead.exists()


def test_where_no_socket_can_be_bound_the_polls_serve_alone(tmp_path) -> None:
    deep = tmp_path / ("x" * 120)
    bell = Doorbell(str(deep / "broker.sqlite3"))
    began = time.monotonic()
    bell.wait(0.05)  # a plain sleep
    assert 0.04 < time.monotonic() - began < 1 and bell.listen() is None
    bell.ring()  # and a ring does nothing
    assert not Path(deep / "bells").exists()


def test_the_broker_database_keeps_a_write_ahead_log(broker, tmp_path) -> None:
    """SQLite's default rollback journal synced the disk several times a commit (3.7 ms a publish)."""
    import sqlite3

    with Connection(broker) as conn:
        queue = conn.SimpleQueue("wal-test")
        queue.put({"n": 1})
        assert queue.get(timeout=5).payload == {"n": 1}
        queue.close()
    database = sqlite3.connect(tmp_path / "broker.sqlite3")
    try:
        assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        database.close()


def test_a_taken_message_leaves_no_row_behind(broker, tmp_path) -> None:
    """kombu keeps a taken message as an invisible row; a completion's task carries its raw prompt,
    which must be stored nowhere, so the embedded broker deletes the row as it hands the message over."""
    import sqlite3

    with Connection(broker) as conn:
        queue = conn.SimpleQueue("taken-test")
        queue.put({"prompt": "my card number is 4111 1111 1111 1111"})
        queue.put({"prompt": "second"})
        first = queue.get(timeout=5)
        assert first.payload["prompt"].startswith("my card")
        first.ack()
        database = sqlite3.connect(tmp_path / "broker.sqlite3")
        try:
            rows = [r[0] for r in database.execute("SELECT payload FROM kombu_message")]
        finally:
            database.close()
        assert len(rows) == 1 and "4111" not in rows[0]
        assert queue.get(timeout=5).payload == {"prompt": "second"}
        queue.close()
