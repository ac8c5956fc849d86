"""How long a test waits for an event before it calls it hung: generous, and longer on a slow machine.

Tests wait on events (a job's status, a log line, a process's exit), never on how fast the machine
is; the limit only stops a test that would otherwise wait for ever. TEST_PATIENCE multiplies every
limit (default 3): a busy 2-core machine once took 43 minutes for the suite and ran one wait out.
"""

from __future__ import annotations

import os

PATIENCE = float(os.environ.get("TEST_PATIENCE", "3") or 3)


def patience(seconds: float) -> float:
    """The limit for an event expected within `seconds` on an idle machine."""
    return seconds * PATIENCE


def finished(api: object, url: str, timeout: float = 120) -> dict:
    """The body of a job's API resource (`url`) once its status is done or failed, polled."""
    import time

    deadline, body = time.monotonic() + patience(timeout), None
    while time.monotonic() < deadline:
        body = api.get(url).json()  # type: ignore[attr-defined]
        if body["status"] in ("done", "failed"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish: {body}")
