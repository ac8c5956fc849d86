"""Long responses on the event loop, without a thread of their own.

Django's ASGI handler runs a request's synchronous parts (middleware, a DRF view) in a thread made
for that request (asgiref's ThreadSensitiveContext), and keeps the thread until the request ends,
idle while the response streams. For a completion streamed for minutes, that is a parked thread per
open stream. Once the view has answered, `release_request_thread` closes the view's database
connections in that thread and lets the thread go; what the stream still does synchronously (a
liveness read, marking a failure) runs on the loop's shared executor and closes what it opens.
Django's last step (`response.close()`) makes the request a new thread for that moment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


async def release_request_thread() -> None:
    await sync_to_async(connections.close_all)()  # in the view's thread, which holds them
    context = SyncToAsync.thread_sensitive_context.get(None)
    executor = SyncToAsync.context_to_thread_executor.pop(context, None) if context is not None else None
    if executor is not None:
        executor.shutdown(wait=False)  # idle: its thread ends now


def in_shared_thread(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`function` on the loop's shared executor, its database connections closed after (pooled:
    given back), for code a stream runs after `release_request_thread`."""

    def closing(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(closing, thread_sensitive=False)
