"""How long a test waits for an event before it calls it hung: generous, and longer on a slow machine.

Tests wait on events (a job's status, a log line, a process's exit), never on how fast the machine
is; the limit only stops a test that would otherwise wait for ever. TEST_PATIENCE multiplies every
limit (default 3): a busy 2-core machine once took 43 minutes for the suite and ran one wait out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
PATIENCE = float(os.environ.get("TEST_PATIENCE", "3") or 3)


def patience(seconds: float) -> float:
    """The limit for an event expected within `seconds` on an idle machine."""
    return seconds * PATIENCE


def until(check: Callable[[], T], *, within: float, what: str) -> T:
    """`check()`'s first truthy value, asked again every 0.2 s; AssertionError (naming `what`) only
    when none came within `patience(within)`, a limit for a hang, not a speed goal."""
    deadline = time.monotonic() + patience(within)
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {patience(within):.0f} s")
        time.sleep(0.2)


def finished(api: object, url: str, timeout: float = 120) -> dict:
    """The body of a job's API resource (`url`) once its status is done or failed."""

    def settled() -> dict | None:
        body = api.get(url).json()  # type: ignore[attr-defined]
        return body if body["status"] in ("done", "failed") else None

    return until(settled, within=timeout, what=f"{url} finishing")
