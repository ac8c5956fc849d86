"""Dynamic batching: concurrent requests for one model are answered by one forward pass.

Requests queue up; a thread takes the first, waits at most `max_wait_s` for others, and runs the
model once on up to `max_batch` rows. A request larger than `max_batch` runs in slices.

The wait is adaptive: it is spent only when the previous batch held more than one request. A lone
caller (concurrency 1) never waits for company that is not coming; under load, batches fill.

`submit_timed` also says what the request's rows cost: each forward pass's time split over the rows
it ran. That is what a request is metered for, not its wall time, which under load is mostly the
wait for earlier batches: 32 callers each metered for their wall time were charged many times the
compute the model spent on them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

BatchFn = Callable[[list[Any]], Sequence[Any]]


class DynamicBatcher:
    def __init__(self, fn: BatchFn, *, max_batch: int = 32, max_wait_s: float = 0.005, name: str = "") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[list[Any], Future[tuple[list[Any], float]]]] = queue.Queue()
        self._closed = False
        self.batches_run = 0
        self.rows_run = 0
        self._last_requests = 0
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, items: list[Any], timeout: float | None = None) -> list[Any]:
        """Runs `items` in a shared batch; blocks until their results are ready."""
        return self.submit_timed(items, timeout)[0]

    def submit_timed(self, items: list[Any], timeout: float | None = None) -> tuple[list[Any], float]:
        """Like `submit`, with the seconds of model time that `items` took: each pass they ran in,
        split by rows."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        if not items:
            return [], 0.0
        future: Future[tuple[list[Any], float]] = Future()
        self._queue.put((list(items), future))
        return future.result(timeout=timeout)

    def close(self) -> None:
        self._closed = True
        self._queue.put(([], Future()))

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if self._closed and not first[0]:
                return
            pending = [first]
            rows = len(first[0])
            wait = self.max_wait_s if self._last_requests > 1 else 0.0
            deadline = time.monotonic() + wait
            while rows < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    # What is already queued joins at once; only then is there a wait, if any.
                    item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if not item[0]:  # close() sentinel
                    self._queue.put(item)
                    break
                pending.append(item)
                rows += len(item[0])
            self._last_requests = len(pending)
            self._run(pending)

    def _run(self, pending: list[tuple[list[Any], Future[tuple[list[Any], float]]]]) -> None:
        flat = [row for items, _ in pending for row in items]
        try:
            results: list[Any] = []
            row_seconds: list[float] = []  # each row's share of the pass that ran it
            for start in range(0, len(flat), self.max_batch):
                chunk = flat[start : start + self.max_batch]
                began = time.perf_counter()
                out = list(self.fn(chunk))
                share = (time.perf_counter() - began) / len(chunk)
                if len(out) != len(chunk):
                    raise RuntimeError(f"the model returned {len(out)} results for {len(chunk)} rows")
                results.extend(out)
                row_seconds.extend([share] * len(chunk))
                self.batches_run += 1
                self.rows_run += len(chunk)
        except BaseException as exc:  # every waiting request learns of the failure
            for _, future in pending:
                future.set_exception(exc)
            return
        offset = 0
        for items, future in pending:
            end = offset + len(items)
            future.set_result((results[offset:end], sum(row_seconds[offset:end])))
            offset = end
