from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from portal.platform.translations import compile_catalogues
from tests.asgi_server import AsgiLiveServer
from tests.inference.factories import Served, sentiment_archive, serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory
from tests.worker import CeleryWorker, start_worker

# The cache outlives a test run (a file cache, or Redis): a fresh prefix per run keeps rate-limit
# and lock-out counters of earlier runs (whose ids repeat) out of this one.
# The worker processes that tests start inherit it through the environment.
os.environ["CACHE_KEY_PREFIX"] = settings.CACHES["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:8]}"

# Tests talk plain HTTP to the portal they start (the Makefile says HTTPS=false; pytest run directly
# may not have): in this process and in the processes the tests start.
os.environ.setdefault("HTTPS", "false")
for _name, _value in (("SECURE_SSL_REDIRECT", False), ("SESSION_COOKIE_SECURE", False),
                      ("CSRF_COOKIE_SECURE", False), ("SECURE_HSTS_SECONDS", 0)):
    setattr(settings, _name, _value)

# Tests serve static files from the finders, not from a collected (hashed) manifest.
settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

os.makedirs(settings.STATIC_ROOT, exist_ok=True)  # whitenoise warns about a missing one
settings.LANGUAGE_COOKIE_SECURE = False

# The catalogues compiled as `make test` compiles them, for a pytest run started directly.
compile_catalogues()

# The demo models' builds run beside the suite in CI (.ci/run), in this order; a test that needs one before
# it is built waits for it. Files are run in the order of the latest build they need, files that need none
# first: a worker then never sits waiting at the start for a build that comes last (the moderation
# classifier, about 13 minutes in) while other files could run. Within a rank, the larger files first (what
# xdist's own reordering does, which the Makefile turns off so that this order holds: --no-loadscope-reorder).
BUILD_RANK = {"sentiment_bytes": 1, "assistant_bytes": 2, "embedder_bytes": 3, "moderation_build": 4}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    files = [item.nodeid.split("::")[0] for item in items]
    rank: dict[str, int] = {}
    for item, path in zip(items, files, strict=True):
        needed = max((BUILD_RANK.get(name, 0) for name in getattr(item, "fixturenames", ())), default=0)
        rank[path] = max(rank.get(path, 0), needed)
    size = Counter(files)  # within a rank the larger files first, as xdist would
    first = {path: position for position, path in reversed(list(enumerate(files)))}
    key = {path: (rank[path], -size[path], first[path]) for path in first}
    order = sorted(range(len(items)), key=lambda i: key[files[i]])  # stable: a file's tests keep their order
    items[:] = [items[i] for i in order]


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_lockouts_between_tests() -> Iterator[None]:
    # Every test client comes from 127.0.0.1: one test's failures must not lock out the next.
    yield
    cache.delete_many(["login-fail:addr:127.0.0.1", "login-fail:addr:"])


@pytest.fixture(autouse=True)
def _no_language_left_active() -> Iterator[None]:
    # A page read through the test client activates its reader's language on this thread and nothing
    # deactivates it: the next test must start from the default, as a new request or task would.
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(autouse=True)
def _no_redaction_rules_between_tests() -> Iterator[None]:
    # A test's transaction is rolled back: rules this process read inside it must not outlive it.
    yield
    from audit.log import rulebook

    rulebook.book().forget()


@pytest.fixture(scope="session")
def live_server() -> Iterator[AsgiLiveServer]:
    """The portal served as production serves it (ASGI, uvicorn): tests/asgi_server.py."""
    server = AsgiLiveServer()
    yield server
    server.stop()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker) -> Iterator[CeleryWorker]:
    """A real Celery worker process on the test database and the configured broker."""
    with django_db_blocker.unblock():
        worker = start_worker()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def tabular(db, tmp_path) -> Served:
    """A tiny tabular model served in organisation `bank`, one member per role."""
    return serve_model(OrganizationFactory(slug="bank"), name="credit", task="tabular-classification",
                       archive=tiny_tabular_archive(tmp_path / "tiny"))


@pytest.fixture(scope="session")
def sentiment_bytes() -> bytes:
    """The demo sentiment model with real MiniLM weights (built once per checkout)."""
    return sentiment_archive()


@pytest.fixture(scope="session")
def generation_worker(django_db_setup, django_db_blocker) -> Iterator[CeleryWorker]:
    """The generation pool's worker: a process of its own, as `manage.py serve` starts it."""
    with django_db_blocker.unblock():
        worker = start_worker(queues="gen-cpu", hostname=f"gen-{os.getpid()}@localhost")
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def assistant_bytes() -> bytes:
    from django.conf import settings

    from inference.ml import artifacts
    from inference.ml.demos import ASSISTANT, build_cached

    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    return artifacts.pack_directory(folder)


@pytest.fixture(scope="session")
def moderation_build() -> tuple:
    from django.conf import settings

    from inference.ml.demos import MODERATION, build_cached

    return build_cached(MODERATION, lambda *a: None, settings.BUILD_CACHE_DIR)


@pytest.fixture(scope="session")
def moderation_bytes(moderation_build) -> bytes:
    from inference.ml import artifacts

    return artifacts.pack_directory(moderation_build[0])  # packed once: the served archive's check is per archive


@pytest.fixture(scope="session")
def embedder_bytes() -> bytes:
    from django.conf import settings

    from inference.ml import artifacts
    from inference.ml.demos import EMBEDDER, build_cached

    folder, _ = build_cached(EMBEDDER, lambda *a: None, settings.BUILD_CACHE_DIR)
    return artifacts.pack_directory(folder)


@pytest.fixture
def embedder(embedder_bytes, celery_worker) -> Served:
    """The demo embedder (all-MiniLM-L6-v2, real weights) served in organisation `words` by a real worker."""
    return serve_model(OrganizationFactory(slug="words"), name="embedder", task="text-embedding",
                       archive=embedder_bytes)


@pytest.fixture
def assistant(assistant_bytes, generation_worker) -> Served:
    return serve_model(OrganizationFactory(slug="lab"), name="assistant", task="text-generation",
                       archive=assistant_bytes)
