"""A memory-bounded LRU cache of loaded models, one per worker process, safe across threads."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger("steward.inference")
T = TypeVar("T")


class ModelCache(Generic[T]):
    def __init__(self, max_bytes: int, size_of: Callable[[T], int], on_evict: Callable[[T], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of
        self.on_evict = on_evict
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0

    def get(self, key: str, loader: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            key_lock = self._loading.setdefault(key, threading.Lock())
        # One thread loads a model; the others wait for it rather than load it again.
        with key_lock:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key][0]
            value = loader()
            size = self.size_of(value)
            self.loads += 1
            with self._lock:
                self._items[key] = (value, size)
                self._evict(keep=key)
                self._loading.pop(key, None)
            return value

    def _evict(self, keep: str) -> None:
        while self.total_bytes() > self.max_bytes and len(self._items) > 1:
            key, (value, size) = next(iter(self._items.items()))
            if key == keep:
                break
            del self._items[key]
            logger.info("model cache: evicted %s (%d MB)", key, size // 2**20)
            if self.on_evict:
                self.on_evict(value)

    def total_bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Drops every model (each through `on_evict`): the process is stopping."""
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        for value, _ in items:
            if self.on_evict:
                self.on_evict(value)
