"""Many streams at once: the web holds 64 open streamed completions on its event loop, not on a thread
each, and serves them all, through the `openai` SDK's async client against the live (ASGI) portal,
the real generation worker and the real weights."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from django.conf import settings

from inference.models import Completion
from portal.celery import app
from tests.portal.accounts.factories import token_for
from tests.waits import patience, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STREAMS = 64


@pytest.mark.skipif(not settings.REDIS_URL, reason="holds the worker back with Celery's remote control (Redis)")
def test_64_streams_are_held_open_at_once_without_a_thread_each_and_all_served(
        live_server, assistant, generation_worker) -> None:
    secret = token_for(assistant.actors["consumer"].user, assistant.org, "consumer").secret
    threads_before = threading.active_count()
    opened, all_open, resume = [0], asyncio.Event(), asyncio.Event()
    # The worker stops taking completions, so that every stream is open and waiting at the web at
    # once (each has had its first chunk): a certainty, not a race against the model's speed.
    control = {"destination": [generation_worker.hostname], "reply": True, "timeout": patience(10)}
    assert app.control.cancel_consumer("gen-cpu", **control), "the generation worker did not answer"
    threads_while_open: list[int] = []

    async def one(client: openai.AsyncOpenAI, number: int) -> tuple[str, str]:
        stream = await client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": f"Say the number {number}."}],
            max_tokens=3, temperature=0, stream=True)
        text, finish = "", ""
        async for chunk in stream:
            if opened[0] < STREAMS and not text and not finish and chunk.choices and chunk.choices[0].delta.role:
                opened[0] += 1
                if opened[0] == STREAMS:
                    all_open.set()
                await resume.wait()
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return text, finish

    async def run() -> list[tuple[str, str]]:
        # (the SDK's own client allows 1,000 connections)
        async with openai.AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0,
                                      timeout=patience(300)) as client:
            calls = asyncio.gather(*(one(client, n) for n in range(STREAMS)))
            await asyncio.wait_for(all_open.wait(), patience(120))
            # Every stream is open; the view's thread of each has gone (an idle stream holds none)
            await asyncio.to_thread(lambda: threads_while_open.append(until(
                lambda: (n := threading.active_count()) - threads_before < 16 and n,
                within=30, what="the open streams' request threads gone")))
            resume.set()
            app.control.add_consumer("gen-cpu", **control)
            return await calls

    try:
        # in a thread of its own: Playwright's sync API (the browser tests' session) keeps an event
        # loop running in this one
        with ThreadPoolExecutor(max_workers=1) as runner:
            answers = runner.submit(asyncio.run, run()).result()
    finally:
        app.control.add_consumer("gen-cpu", **control)
    assert len(answers) == STREAMS and all(finish in ("stop", "length") for _, finish in answers)
    assert all(text for text, _ in answers)
    assert threads_while_open[0] - threads_before < 16  # not one thread per stream (64)
    assert Completion.objects.filter(organization=assistant.org, status="done").count() == STREAMS
