from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from portal.accounts.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    """A per-token rate limit on the shared cache (Redis in production): 429 with Retry-After.

    Each token may carry its own rate; others get API_TOKEN_RATE_PER_MINUTE. Browser sessions are
    limited per user at the same default rate.
    """

    scope = "token"

    def __init__(self) -> None:  # the rate depends on the request's token: set in allow_request
        pass

    def allow_request(self, request: Request, view: Any) -> bool:
        per_minute = settings.API_TOKEN_DEFAULT_RATE_PER_MINUTE
        if isinstance(request.auth, ApiToken) and request.auth.rate_per_minute:
            per_minute = request.auth.rate_per_minute
        self.rate = f"{per_minute}/m"
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            return f"throttle:token:{request.auth.key_hash[:24]}"
        if request.user and request.user.is_authenticated:
            return f"throttle:user:{request.user.pk}"
        return None  # anonymous requests are refused by the permission check anyway
