from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from portal.accounts.models import ApiToken
from portal.platform.cache import SharedClientRedisCache

# At most `limit` requests in any `window` seconds: a sliding log in a sorted set, checked and
# added to in one atomic step (one round trip), so web processes sharing a token cannot together
# let more through, on Redis's clock (the web hosts' clocks may disagree). Returns {1, 0} when
# allowed, else {0, seconds until the oldest request leaves}.
_SLIDING_LOG = """
local key, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""


class TokenRateThrottle(SimpleRateThrottle):
    """A per-token rate limit on the shared cache (Redis in production): 429 with Retry-After.

    Each token may carry its own rate; others get API_TOKEN_RATE_PER_MINUTE. Browser sessions are
    limited per user at the same default rate. On Redis the check is one atomic script (exact
    across processes); DRF's own throttle, used on the embedded default's file cache, reads the
    request log, then writes it back: concurrent requests could each see room for one more, and it
    moved the whole log (a pickled list of every request in the window) twice a request.
    """

    scope = "token"

    def __init__(self) -> None:  # the rate depends on the request's token: set in allow_request
        self._retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        per_minute = settings.API_TOKEN_DEFAULT_RATE_PER_MINUTE
        if isinstance(request.auth, ApiToken) and request.auth.rate_per_minute:
            per_minute = request.auth.rate_per_minute
        self.rate = f"{per_minute}/m"
        self.num_requests, self.duration = self.parse_rate(self.rate)
        backend = caches["default"]
        if not isinstance(backend, SharedClientRedisCache):
            return super().allow_request(request, view)
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        client = backend._cache.get_client(write=True)
        allowed, wait = _script(client)(keys=[backend.make_key(key)], client=client,
                                        args=[self.duration, self.num_requests, uuid.uuid4().hex])
        self._retry_after = None if allowed else max(float(wait), 0.001)
        return bool(allowed)

    def wait(self) -> float | None:
        if self._retry_after is not None:
            return self._retry_after
        return super().wait()

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            return f"throttle:token:{request.auth.key_hash[:24]}"
        if request.user and request.user.is_authenticated:
            return f"throttle:user:{request.user.pk}"
        return None  # anonymous requests are refused by the permission check anyway


_SCRIPT: list[Any] = []


def _script(client: Any) -> Any:
    """The script, run by EVALSHA on the client each call is given (loaded again if Redis forgot it)."""
    if not _SCRIPT:
        _SCRIPT.append(client.register_script(_SLIDING_LOG))
    return _SCRIPT[0]
