"""Usage over time, per day, per token and per model, from the metering already stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from inference.models import BatchJob, Prediction, UsageDaily
from inference.services.usage import today
from tests.inference.factories import bearer_client
from tests.portal.accounts.factories import token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def metered(tabular):
    """Three days of metering, a token's share, two predictions and a batch job of credit."""
    token = token_for(tabular.actors["consumer"].user, tabular.org, "consumer", name="claims service").token
    day = today()
    for back, rows in ((0, 5), (1, 7), (3, 2)):
        UsageDaily.objects.create(organization=tabular.org, token=None, day=day - timedelta(days=back),
                                  requests=rows, rows=rows, compute_ms=rows * 1.5, energy_wh=rows * 0.25,
                                  energy_estimated_wh=rows * 0.25, carbon_g=rows * 0.25 * 0.475)
    UsageDaily.objects.create(organization=tabular.org, token=token, day=day, requests=4, rows=4, compute_ms=6.0,
                              energy_wh=1.0, energy_estimated_wh=1.0, carbon_g=0.475)
    for rows in (1, 2):
        Prediction.objects.create(organization=tabular.org, model_version=tabular.version, status="done",
                                  requested_by=tabular.actors["consumer"].user, inputs={"rows": []}, rows=rows,
                                  energy_wh=rows * 0.5)
    BatchJob.objects.create(organization=tabular.org, model_version=tabular.version, input_name="b.csv",
                            input_path="x", input_format="csv", rows_total=10, rows_done=10, status="done",
                            created_by=tabular.actors["owner"].user)
    return token


def test_usage_per_day_token_and_model_through_the_api(tabular, metered) -> None:
    response = bearer_client(tabular, "owner").get("/api/v1/usage?days=7")
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["daily"]) == 7 and body["until"] == today().isoformat()
    by_day = {d["day"]: d["rows"] for d in body["daily"]}
    assert by_day[today().isoformat()] == 5 and by_day[(today() - timedelta(days=1)).isoformat()] == 7
    assert by_day[(today() - timedelta(days=2)).isoformat()] == 0  # a day without traffic is there, at 0
    assert body["tokens"] == [{"token": metered.pk, "name": "claims service", "requests": 4, "rows": 4,
                               "energy_wh": 1.0, "carbon_g": 0.475}]
    assert body["models"] == [{"model": "credit", "requests": 2, "batch_jobs": 1, "rows": 13, "energy_wh": 1.5,
                               "carbon_g": pytest.approx(1.5 / 1000 * body["energy"]["grid_g_per_kwh"])}]
    # energy per day, the part estimated, and carbon: summed over the period
    assert {d["day"]: d["energy_wh"] for d in body["daily"]}[today().isoformat()] == 1.25
    assert body["energy"]["energy_wh"] == pytest.approx((5 + 7 + 2) * 0.25)
    assert body["energy"]["estimated_wh"] == body["energy"]["energy_wh"]
    assert bearer_client(tabular, "owner").get("/api/v1/usage?days=0").status_code == 400
    assert bearer_client(tabular, "owner").get("/api/v1/usage?days=x").status_code == 400


def test_the_usage_page_charts_the_days_and_lists_tokens_and_models(tabular, metered) -> None:
    page = Client()
    page.force_login(tabular.actors["owner"].user)
    html = page.get("/usage/?days=7").content.decode()
    # rows and energy per day, a token, a model
    assert 'data-testid="usage-daily"' in html and html.count('class="cbar"') == 7 + 7 + 1 + 1
    assert 'data-testid="usage-energy"' in html and "all estimated" in html  # no counter measured any of it
    assert "Rows per token over the period" in html and "Rows per model over the period" in html
    assert "claims service" in html and ">credit</a>" in html
    assert 'data-testid="usage-link"' in page.get("/usage/card/").content.decode()
