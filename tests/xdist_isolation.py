"""Each pytest-xdist worker gets a portal of its own: its Redis database (broker and cache), its data
folder (SQLite, embedded broker, artifacts, logs) and, through pytest-django, its test database.

Loaded with `-p tests.xdist_isolation` (pyproject's addopts) so that it runs before pytest-django
imports the settings: a worker's Celery workers inherit the environment, so a task one pytest
worker sends is never taken by another's Celery worker, which would look in the wrong database.
Without xdist (PYTEST_XDIST_WORKER unset) it changes nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker:
    _number = int(re.sub(r"\D", "", _worker) or 0)
    _redis = urlsplit(os.environ.get("REDIS_URL", ""))
    if _redis.scheme:
        # redis://host:port/N -> database N + 1 + the worker's number; Redis has 16 (0-15)
        _base = int(_redis.path.strip("/") or 0)
        _index = _base + 1 + _number
        if _index > 15:
            raise RuntimeError(f"REDIS_URL's database {_base} leaves no Redis database for xdist worker {_worker}")
        os.environ["REDIS_URL"] = urlunsplit(_redis._replace(path=f"/{_index}"))
    _root = Path(__file__).resolve().parent.parent
    _data = Path(os.environ.get("STEWARD_DATA_DIR") or _root / "var" / "test")
    os.environ["STEWARD_DATA_DIR"] = str(_data / _worker)
