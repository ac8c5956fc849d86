"""A stream whose generation worker dies ends in seconds with a clear error, its tokens given back.

The worker side is what a worker leaves when it is killed: its row claimed RUNNING under its name,
a part already sent on the reply key (ReplyWriter, as completion_run sends them), and its claim on its
name in the cache no longer renewed (portal/platform/workers.py renews it every NAME_BEAT_SECONDS)."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from audit.log.models import LogEntry
from inference.exceptions import GenerationWorkerLost
from inference.models import Completion, UsageDaily
from inference.services import completions
from inference.services.usage import token_quota_reserve
from portal.jobs import JobStatus
from portal.platform.replies import Awaited, ReplyWriter, reply_key
from portal.platform.workers import HEARTBEAT_TTL, NAME_BEAT_SECONDS, WorkerWatch, _name_key
from tests.waits import patience, until

pytestmark = pytest.mark.django_db(transaction=True)


def running_completion(served, *, worker: str, reserved: int) -> Awaited[Completion]:
    token_quota_reserve(organization=served.org, tokens=reserved)
    completion = Completion.objects.create(
        organization=served.org, model_version=served.version, kind="chat", stream=True, parameters={},
        tokens_reserved=reserved, prompt_tokens=10, status=JobStatus.RUNNING, worker=worker,
        heartbeat_at=timezone.now(), started_at=timezone.now(), created_by=served.actors["consumer"].user)
    return Awaited(completion, reply_key())


def test_a_stream_whose_worker_stops_beating_ends_in_seconds_and_gives_tokens_back(tabular, settings) -> None:
    settings.GENERATION_LIVENESS_SECONDS = 0.2
    settings.GENERATION_TIMEOUT_SECONDS = 300  # what a dead worker cost before: the gap timeout
    hostname = "gen-doomed@localhost"
    # given: a live worker (its claim renewed) that has sent one part
    asked = running_completion(tabular, worker=hostname, reserved=100)
    cache.set(_name_key(hostname), {"by": "x", "at": time.time()}, timeout=60)
    ReplyWriter(asked.reply_to).part({"index": 0, "text": "Hello"})  # (a live worker would renew the claim)
    parts = completions.completion_parts(asked)
    assert next(parts) == ("part", {"index": 0, "text": "Hello"})
    # when: it dies (its claim stops changing: nobody renews it; five beats later it is known gone)
    began = time.monotonic()
    with pytest.raises(GenerationWorkerLost) as lost:
        next(parts)
    # then: well before the gap timeout, a sentence, the row failed and the unused tokens given back
    waited = time.monotonic() - began
    assert 5 * NAME_BEAT_SECONDS <= waited < settings.GENERATION_TIMEOUT_SECONDS, waited
    assert lost.value.status_code == 503 and "Try again" in lost.value.message
    failed = Completion.objects.get(pk=asked.stored.pk)
    assert failed.status == JobStatus.FAILED and "stopped" in failed.error
    usage = UsageDaily.objects.get(organization=tabular.org, token__isnull=True)
    assert usage.tokens == 10, "the prompt's tokens stay spent; the 90 reserved for the answer come back"
    assert LogEntry.objects.filter(action="completion.failed", target_id=str(failed.pk)).exists()


def test_a_claim_that_keeps_changing_is_alive_and_one_that_stops_is_gone_five_beats_later() -> None:
    # the watch's own clock, moved by hand: the judgment of time, without waiting on it
    now = [100.0]
    watch = WorkerWatch("gen-judged@localhost", clock=lambda: now[0])
    for beat in range(20):  # twenty beats of a live worker: its claim changes every beat
        cache.set(_name_key("gen-judged@localhost"), {"by": "x", "at": beat}, timeout=60)
        assert watch.alive()
        now[0] += NAME_BEAT_SECONDS
    now[0] += 4 * NAME_BEAT_SECONDS  # then it stops renewing: alive until five beats have passed
    assert watch.alive()
    now[0] += 2 * NAME_BEAT_SECONDS
    assert not watch.alive()
    # no claim at all (a worker still settling its name, or one whose claim expired): gone only much later
    absent = WorkerWatch("gen-absent@localhost", clock=lambda: now[0])
    assert absent.alive()
    now[0] += 2 * HEARTBEAT_TTL - 1
    assert absent.alive()
    now[0] += 2
    assert not absent.alive()


def test_a_stream_waits_through_the_silence_of_a_worker_that_keeps_beating(tabular, settings, monkeypatch) -> None:
    settings.GENERATION_LIVENESS_SECONDS = 0.05
    hostname = "gen-alive@localhost"
    asked = running_completion(tabular, worker=hostname, reserved=50)
    asked_alive: list[bool] = []
    judge = WorkerWatch.alive

    def counted(self: WorkerWatch) -> bool:  # the real judgment, counted
        asked_alive.append(judge(self))
        return asked_alive[-1]

    monkeypatch.setattr(WorkerWatch, "alive", counted)
    beating = threading.Event()

    def beat() -> None:  # as a live worker renews its name
        while not beating.is_set():
            cache.set(_name_key(hostname), {"by": "x", "at": time.time()}, timeout=60)
            beating.wait(0.05)

    beater = threading.Thread(target=beat)
    beater.start()
    parts = completions.completion_parts(asked)
    got: list[object] = []

    def wait() -> None:
        try:
            got.append(next(parts))
        finally:
            connection.close()  # the thread's own connection (the liveness check reads the row)

    waiting = threading.Thread(target=wait)
    waiting.start()
    try:
        # the stream has asked several times whether the worker beats, and waits on
        until(lambda: len(asked_alive) >= 5, within=60, what="five liveness checks")
        assert waiting.is_alive() and all(asked_alive)
        ReplyWriter(asked.reply_to).part({"index": 0, "text": "late"})
        waiting.join(timeout=patience(30))
    finally:
        beating.set()
        beater.join()
    assert got == [("part", {"index": 0, "text": "late"})]
    assert Completion.objects.get(pk=asked.stored.pk).status == JobStatus.RUNNING
