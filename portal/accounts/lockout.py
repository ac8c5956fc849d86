"""Login throttling: after LOGIN_MAX_FAILURES failures for a username (or from an address) within
the lock-out window, sign-in is refused for LOGIN_LOCKOUT_SECONDS, and the lock-out is logged.

Counters live in the shared cache (Redis in production), so every web process sees them.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

from audit.log.services import AuditActor, audit_record


def _keys(username: str, address: str) -> list[str]:
    user_key = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:user:{user_key}", f"login-fail:addr:{address}"]


# An address is shared by many people behind one NAT: it gets a wider margin than a username.
ADDRESS_FACTOR = 5


def _limits() -> list[int]:
    return [settings.LOGIN_MAX_FAILURES, settings.LOGIN_MAX_FAILURES * ADDRESS_FACTOR]


def is_locked(*, username: str, address: str) -> bool:
    counts = cache.get_many(_keys(username, address))
    return any(
        counts.get(key, 0) >= limit for key, limit in zip(_keys(username, address), _limits(), strict=True)
    )


def register_failure(*, username: str, address: str) -> bool:
    """Counts a failed sign-in; returns True when it locks the username or address out."""
    locked_now = False
    for key, limit in zip(_keys(username, address), _limits(), strict=True):
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            count = 1
        if count == limit:
            cache.touch(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            locked_now = True
    if locked_now:
        audit_record(
            action="user.locked_out",
            actor=AuditActor(type="anonymous", label=username[:150]),
            organization_id=None,
            target_type="accounts.User",
            target_id="",
            payload={
                "username": username,
                "address": address,
                "failures": settings.LOGIN_MAX_FAILURES,
                "seconds": settings.LOGIN_LOCKOUT_SECONDS,
            },
        )
    return locked_now


def clear(*, username: str, address: str) -> None:
    cache.delete_many(_keys(username, address)[:1])
