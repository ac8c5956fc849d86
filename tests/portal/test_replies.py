"""The reply channel of synchronous requests (portal/platform/replies.py): on a real Redis, and as files in
the data folder (the embedded default)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from inference.exceptions import ArtifactMismatch
from portal.platform import replies
from portal.platform.replies import (
    ReplyTimeout,
    WorkerFailed,
    reply_fail,
    reply_key,
    reply_send,
    reply_sweep,
    reply_wait,
)

REDIS = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"


class Redis:
    def __init__(self, client) -> None:
        self.client = client

    def left(self, key: str) -> bool:
        return bool(self.client.exists(key))


class Files:
    def __init__(self, folder) -> None:
        self.folder = folder

    def left(self, key: str) -> bool:
        return any((self.folder / "replies").iterdir())


def _files(settings, tmp_path) -> Files:
    settings.REDIS_URL, settings.DATA_DIR = "", tmp_path
    return Files(tmp_path)


def _redis(settings, monkeypatch) -> Redis:
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {REDIS}")
    settings.REDIS_URL = REDIS
    monkeypatch.setattr(replies, "_client", None)
    return Redis(client)


@pytest.fixture(params=["redis", "files"])
def transport(request, settings, monkeypatch, tmp_path):
    return _files(settings, tmp_path) if request.param == "files" else _redis(settings, monkeypatch)


@pytest.fixture
def files(settings, tmp_path) -> Files:
    return _files(settings, tmp_path)


@pytest.fixture
def on_redis(settings, monkeypatch) -> Redis:
    return _redis(settings, monkeypatch)


def test_an_answer_sent_later_wakes_the_waiter_and_leaves_nothing(transport) -> None:
    key = reply_key()
    assert key != reply_key()  # one key per request
    later = threading.Timer(0.2, reply_send, (key, {"label": "positive", "scores": {"positive": 0.9}}))
    later.start()
    began = time.monotonic()
    assert reply_wait(key, timeout=5) == {"label": "positive", "scores": {"positive": 0.9}}
    assert 0.15 < time.monotonic() - began < 2
    assert not transport.left(key)


def test_a_wait_with_no_answer_ends_at_its_timeout(transport) -> None:
    began = time.monotonic()
    with pytest.raises(ReplyTimeout):
        reply_wait(reply_key(), timeout=0.5)
    assert 0.45 <= time.monotonic() - began < 1.5


def test_a_wait_of_nothing_only_looks(transport) -> None:
    began = time.monotonic()
    with pytest.raises(ReplyTimeout):
        reply_wait(reply_key(), timeout=0)  # on Redis, not a BLPOP with 0, which waits for ever
    assert time.monotonic() - began < 0.5
    key = reply_key()
    reply_send(key, {"label": "there already"})
    assert reply_wait(key, timeout=0) == {"label": "there already"}
    assert not transport.left(key)


def test_a_portal_error_keeps_its_status_and_message_and_any_other_error_says_only_what_failed(transport) -> None:
    key = reply_key()
    reply_fail(key, ArtifactMismatch("The artifact of credit v1 does not match its recorded SHA-256."), message="x")
    with pytest.raises(WorkerFailed) as failed:
        reply_wait(key, timeout=1)
    assert (failed.value.status_code, failed.value.code) == (500, "artifact_mismatch")
    assert "SHA-256" in failed.value.message
    reply_fail(key, KeyError("/srv/secret/path"), message="The model failed on prediction 7.")
    with pytest.raises(WorkerFailed) as failed:
        reply_wait(key, timeout=1)
    assert (failed.value.status_code, failed.value.code, failed.value.message) == (
        500, "worker_failed", "The model failed on prediction 7.")
    assert not transport.left(key)


def test_an_answer_nobody_reads_expires_on_redis(on_redis, settings) -> None:
    settings.PREDICT_TIMEOUT_SECONDS = 5
    key = reply_key()
    reply_send(key, None)
    assert 0 < on_redis.client.ttl(key) <= 65
    assert reply_sweep() == 0  # nothing for the sweeper to do on Redis
    on_redis.client.delete(key)


def test_an_answer_nobody_reads_is_swept_from_the_data_folder(files, settings) -> None:
    settings.PREDICT_TIMEOUT_SECONDS = 5
    stale, fresh = reply_key(), reply_key()
    reply_send(stale, {"label": "late"})
    old = time.time() - 120  # older than the wait and its margin (5 + 60 s)
    os.utime(replies._reply_path(stale), (old, old))
    reply_send(fresh, {"label": "on time"})
    assert reply_sweep() == 1
    assert reply_wait(fresh, timeout=1) == {"label": "on time"}  # a waiter's answer is kept
    with pytest.raises(ReplyTimeout):
        reply_wait(stale, timeout=0.05)
    assert not files.left(stale)


def test_a_reply_file_is_read_whole_and_the_wait_looks_sparingly(files, monkeypatch) -> None:
    key = reply_key()
    big = {"rows": ["x" * 1000] * 2000}  # ~2 MB: written at once, never seen half written
    sleeps = []
    real_sleep = time.sleep
    monkeypatch.setattr(replies.time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    later = threading.Timer(0.5, reply_send, (key, big))
    later.start()
    assert reply_wait(key, timeout=5) == big
    # a look after 1 ms, then at a sixteenth of the time waited: ~50 looks in 0.5 s, not 500
    assert 20 < len(sleeps) < 90


def test_a_key_that_is_not_a_reply_key_never_names_a_file(files) -> None:
    for key in ("steward:reply:../../etc/passwd", "steward:reply:" + "A" * 32, "/tmp/x"):
        with pytest.raises(ValueError, match="not a reply key"):
            reply_send(key, {"label": "x"})
    assert not files.folder.joinpath("etc").exists()


def test_threads_that_ask_for_the_client_at_once_share_one(on_redis, monkeypatch) -> None:
    """A worker's task threads write their first parts at once: each once made its own client, and the
    ones dropped closed their pools under another thread's read (completions failed)."""
    import redis

    made = redis.Redis.from_url
    calls: list[bool] = []

    def made_once(*args, **kwargs):  # whether the client is made under the lock the others wait on
        calls.append(replies._client_lock.locked())
        return made(*args, **kwargs)

    monkeypatch.setattr(redis.Redis, "from_url", made_once)
    start = threading.Barrier(16)
    got: list[object] = []

    def ask() -> None:
        start.wait(timeout=30)
        got.append(replies._redis())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 16 and len({id(client) for client in got}) == 1
    assert calls == [True]  # made once, and never outside the lock, however the threads interleave
