"""Login throttling: after LOGIN_MAX_FAILURES failures for a username (or from an address) within
the lock-out window, sign-in is refused for LOGIN_LOCKOUT_SECONDS, and the lock-out is logged.

Every attempt is counted before its password is checked (`attempt_admit`), atomically, so that
concurrent attempts cannot all pass a check made before any of them failed: at most
LOGIN_MAX_FAILURES passwords of one username are ever evaluated in a window. A success takes its
own count back. Counters live in the shared cache (Redis in production, an atomic INCRBY; the
embedded default's file cache under a file lock), so every web process sees them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def _atomic() -> Iterator[None]:
    """Redis increments atomically by itself; Django's file cache reads and rewrites, so it is locked."""
    if settings.REDIS_URL:
        yield
        return
    lock = Path(settings.DATA_DIR) / "cache" / ".login-counters.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _add(key: str, amount: int) -> int:
    cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    try:
        return int(cache.incr(key, amount))
    except ValueError:  # expired between add and incr
        cache.set(key, max(amount, 0), timeout=settings.LOGIN_LOCKOUT_SECONDS)
        return max(amount, 0)


def attempt_admit(*, username: str, address: str) -> bool:
    """Counts an attempt before its password is checked; False (and nothing checked) when the
    username or the address has used up its attempts."""
    admitted = True
    with _atomic():
        for key, limit in zip(_keys(username, address), _limits(), strict=True):
            if _add(key, 1) > limit:
                admitted = False
    return admitted


def attempt_succeeded(*, username: str, address: str) -> None:
    """The password was right: the username starts afresh and the address gets its attempt back."""
    user_key, address_key = _keys(username, address)
    with _atomic():
        cache.delete(user_key)
        if cache.get(address_key):
            _add(address_key, -1)


def attempt_failed(*, username: str, address: str) -> bool:
    """The attempt, already counted, failed; returns True when it is the one that locks out (logged)."""
    counts = cache.get_many(_keys(username, address))
    locked_now = any(counts.get(key) == limit for key, limit in zip(_keys(username, address), _limits(), strict=True))
    if locked_now:
        for key in _keys(username, address):  # the window starts at the lock-out
            cache.touch(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        audit_record(
            action="user.locked_out",
            actor=AuditActor(type="anonymous", label=username[:150]),
            organization_id=None,
            target_type="accounts.User",
            target_id="",
            payload={"username": username, "address": address, "failures": settings.LOGIN_MAX_FAILURES,
                     "seconds": settings.LOGIN_LOCKOUT_SECONDS},
        )
    return locked_now
