"""The reply channel of synchronous requests (portal/replies.py), on a real Redis."""

from __future__ import annotations

import os
import threading
import time

import pytest

from inference.exceptions import ArtifactMismatch
from portal import replies
from portal.replies import ReplyTimeout, WorkerFailed, reply_fail, reply_key, reply_send, reply_wait

REDIS = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"


@pytest.fixture
def redis_replies(settings, monkeypatch):
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {REDIS}")
    settings.REDIS_URL = REDIS
    monkeypatch.setattr(replies, "_client", None)
    return client


def test_no_reply_key_without_redis(settings) -> None:
    settings.REDIS_URL = ""
    assert reply_key() is None


def test_an_answer_sent_later_wakes_the_waiter_and_leaves_nothing(redis_replies) -> None:
    key = reply_key()
    assert key is not None and key != reply_key()  # one key per request
    later = threading.Timer(0.2, reply_send, (key, {"label": "positive", "scores": {"positive": 0.9}}))
    later.start()
    began = time.monotonic()
    assert reply_wait(key, timeout=5) == {"label": "positive", "scores": {"positive": 0.9}}
    assert 0.15 < time.monotonic() - began < 2
    assert not redis_replies.exists(key)


def test_a_wait_with_no_answer_ends_at_its_timeout(redis_replies) -> None:
    began = time.monotonic()
    with pytest.raises(ReplyTimeout):
        reply_wait(reply_key(), timeout=0.5)  # type: ignore[arg-type]
    assert 0.45 <= time.monotonic() - began < 1.5


def test_an_answer_nobody_reads_expires(redis_replies, settings) -> None:
    settings.PREDICT_TIMEOUT_SECONDS = 5
    key = reply_key()
    reply_send(key, None)  # type: ignore[arg-type]
    assert 0 < redis_replies.ttl(key) <= 65
    redis_replies.delete(key)


def test_a_portal_error_keeps_its_status_and_message_and_any_other_error_says_only_what_failed(redis_replies) -> None:
    key = reply_key()
    reply_fail(key, ArtifactMismatch("The artifact of credit v1 does not match its recorded SHA-256."), message="x")  # type: ignore[arg-type]
    with pytest.raises(WorkerFailed) as failed:
        reply_wait(key, timeout=1)  # type: ignore[arg-type]
    assert (failed.value.status_code, failed.value.code) == (500, "artifact_mismatch")
    assert "SHA-256" in failed.value.message
    reply_fail(key, KeyError("/srv/secret/path"), message="The model failed on prediction 7.")  # type: ignore[arg-type]
    with pytest.raises(WorkerFailed) as failed:
        reply_wait(key, timeout=1)  # type: ignore[arg-type]
    assert (failed.value.status_code, failed.value.code, failed.value.message) == (
        500, "worker_failed", "The model failed on prediction 7.")
