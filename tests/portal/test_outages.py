"""Redis down: every path answers 503 in the error shape (or the 503 page), never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.inference.factories import bearer_client
from tests.portal.accounts.factories import PASSWORD

pytestmark = pytest.mark.django_db

DEAD = "redis://127.0.0.1:1/0"  # nothing listens there: the connection is refused at once


@pytest.fixture
def redis_down():
    from django.test import override_settings

    dead = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD}}
    with override_settings(CACHES=dead, REDIS_URL=DEAD):  # back before the suite's own fixtures clean the cache
        yield


def test_api_paths_answer_503_in_the_error_shape(tabular, redis_down) -> None:
    from tests.inference.factories import csv_upload

    consumer = bearer_client(tabular, "consumer")
    responses = {
        "predict": consumer.post("/api/v1/models/credit/predict", {"inputs": [{"income": 5, "region": "north"}]},
                                 format="json"),
        "me": consumer.get("/api/v1/me"),
        "job": consumer.post("/api/v1/models/credit/jobs", {"file": csv_upload([{"income": 1, "region": "north"}])},
                             format="multipart"),
    }
    for name, response in responses.items():
        assert response.status_code == 503, (name, response.content)
        error = response.json()["error"]
        assert error["code"] == "service_unavailable" and "try again" in error["message"], name
        assert response["Retry-After"] == "10"


def test_sign_in_answers_503_with_a_page(tabular, redis_down) -> None:
    user = tabular.actors["owner"].user
    response = Client().post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 503
    assert b"briefly unavailable" in response.content and b"Traceback" not in response.content


def test_healthz_says_503(redis_down) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 503 and "worker" in response.json()["down"]
