"""Django's Redis cache with one client per connection pool, not one per call.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` on every cache call; an API request
makes several (throttle, worker heartbeats), and building them took ~0.35 ms each under cProfile on
the bench VM. A `redis.Redis` over a connection pool is safe to share between threads (redis-py
checks a connection out of the pool per command) and across forks (the pool checks its pid).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class _SharedClient(RedisCacheClient):
    def __init__(self, servers: Any, **options: Any) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]  # (Django's, not in the stubs)
        client = self._clients.get(index)
        if client is None:  # the pool of that same index (Django's _get_connection_pool draws its own)
            pools = self._pools  # type: ignore[attr-defined]
            if index not in pools:
                pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pools[index])  # type: ignore[attr-defined]
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient
