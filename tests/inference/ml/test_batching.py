"""Dynamic batching merges concurrent requests, keeps each request's rows, and reports failures."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.ml.batching import DynamicBatcher
from inference.ml.cache import ModelCache


class DynamicBatcherTests:
    def test_concurrent_requests_share_forward_passes(self) -> None:
        calls: list[int] = []

        def model(rows):
            calls.append(len(rows))
            time.sleep(0.01)
            return [r * 2 for r in rows]

        batcher = DynamicBatcher(model, max_batch=32, max_wait_s=0.02)
        results: dict[int, list[int]] = {}

        def client(i: int) -> None:
            results[i] = batcher.submit([i, i + 100])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(results[i] == [2 * i, 2 * (i + 100)] for i in range(16))
        assert sum(calls) == 32 and len(calls) < 16  # merged, not one pass per request
        assert max(calls) <= 32

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(1, 16))
    def test_rows_come_back_in_order_whatever_the_split(self, sizes, max_batch) -> None:
        batcher = DynamicBatcher(lambda rows: [(r, "ok") for r in rows], max_batch=max_batch, max_wait_s=0.001)
        requests = [list(range(sum(sizes[:i]), sum(sizes[: i + 1]))) for i in range(len(sizes))]
        out: list[list] = [None] * len(requests)  # type: ignore[list-item]

        def run(i):
            out[i] = batcher.submit(requests[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert out == [[(r, "ok") for r in req] for req in requests]
        batcher.close()

    def test_a_failing_model_fails_every_waiting_request(self) -> None:
        def broken(rows):
            raise RuntimeError("CUDA out of memory")

        batcher = DynamicBatcher(broken, max_batch=4, max_wait_s=0.001)
        with pytest.raises(RuntimeError, match="out of memory"):
            batcher.submit([1, 2])
        assert batcher.submit.__self__ is batcher  # still alive for the next request


    def test_a_request_is_charged_its_rows_share_of_the_passes_not_its_wait(self) -> None:
        def model(rows):
            time.sleep(0.1)  # a pass costs the same whatever its rows
            return rows

        batcher = DynamicBatcher(model, max_batch=8, max_wait_s=0.0)
        out: dict[str, tuple[list[int], float, float]] = {}

        def client(name: str, rows: list[int]) -> None:
            began = time.monotonic()
            results, seconds = batcher.submit_timed(rows)
            out[name] = (results, seconds, time.monotonic() - began)

        # `first` runs alone; `one` and `three` queue behind it and share the next pass (4 rows)
        threads = [threading.Thread(target=client, args=args) for args in
                   (("first", [0]), ("one", [1]), ("three", [2, 3, 4]))]
        for t in threads:
            t.start()
            time.sleep(0.02)
        for t in threads:
            t.join()
        assert out["first"][0] == [0] and out["one"][0] == [1] and out["three"][0] == [2, 3, 4]
        assert out["first"][1] >= 0.1  # a pass of its own
        assert out["one"][1] >= 0.025 and out["three"][1] == pytest.approx(3 * out["one"][1])  # 1/4 and 3/4 of one pass
        assert out["one"][2] >= out["one"][1] + 0.09  # its wall time also counts the wait for `first`'s pass
        assert batcher.submit_timed([]) == ([], 0.0)
        batcher.close()


class ModelCacheTests:
    def test_lru_evicts_over_budget_and_loads_once(self) -> None:
        evicted = []
        cache = ModelCache(max_bytes=100, size_of=lambda v: v[1], on_evict=evicted.append)
        loads = []

        def loader(name, size):
            def load():
                loads.append(name)
                return (name, size)
            return load

        cache.get("a", loader("a", 60))
        cache.get("b", loader("b", 30))
        cache.get("a", loader("a", 60))  # hit: a is now most recent
        cache.get("c", loader("c", 40))  # over budget: evicts b (least recent)
        assert cache.keys() == ["a", "c"] and [e[0] for e in evicted] == ["b"]
        assert loads == ["a", "b", "c"]

    def test_concurrent_gets_load_once(self) -> None:
        cache = ModelCache(max_bytes=10**9, size_of=lambda v: 1)
        count = []

        def slow():
            count.append(1)
            time.sleep(0.05)
            return "model"

        threads = [threading.Thread(target=cache.get, args=("m", slow)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(count) == 1


class AdaptiveWaitTests:
    def test_a_lone_caller_does_not_wait_for_company(self) -> None:
        batcher = DynamicBatcher(lambda rows: rows, max_batch=32, max_wait_s=0.5)
        batcher.submit([1])  # the first batch: one request
        began = time.monotonic()
        assert batcher.submit([2]) == [2]
        assert time.monotonic() - began < 0.25  # not the 0.5 s wait

    def test_queued_requests_join_without_a_wait(self) -> None:
        calls: list[int] = []
        gate = threading.Event()

        def model(rows):
            gate.wait()
            calls.append(len(rows))
            return rows

        batcher = DynamicBatcher(model, max_batch=32, max_wait_s=0.0)
        threads = [threading.Thread(target=batcher.submit, args=([i],)) for i in range(6)]
        threads[0].start()
        time.sleep(0.05)  # the first runs, blocked on the gate ...
        for t in threads[1:]:
            t.start()
        time.sleep(0.05)  # ... and five queue behind it
        gate.set()
        for t in threads:
            t.join()
        assert calls[0] == 1 and sum(calls) == 6 and len(calls) == 2
