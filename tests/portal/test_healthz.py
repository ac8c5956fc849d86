"""/healthz answers for the database, the broker and a real worker."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.worker]


def test_healthy_with_a_running_worker(celery_worker) -> None:
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["worker"]["ok"] and celery_worker.hostname in body["checks"]["worker"]["workers"]
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_unavailable_names_the_part_that_is_down(settings) -> None:
    # given: a broker that cannot be reached
    from portal.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        # when
        response = Client().get("/healthz")
    finally:
        app.conf.broker_url = original
    # then
    assert response.status_code == 503
    assert response.json()["down"] == ["broker", "worker"]
