"""Energy and carbon of served work: each prediction and completion records the energy its compute time
took at the worker's power (measured by RAPL or NVML where the machine has them, else CodeCarbon's power
model, labelled estimated), the day's usage sums it with its carbon, and the usage API, the pages and the
compliance export show it. Real workers, the real demo models."""

from __future__ import annotations

import os

import pytest
from django.test import Client

from inference.ml import energy
from inference.models import Completion, Prediction, UsageDaily
from inference.services.energy import grid_intensity
from tests.inference.factories import bearer_client, serve_model
from tests.inference.test_openai_api import sdk
from tests.portal.accounts.factories import OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_power_model_is_codecarbons_where_nothing_measures() -> None:
    power = energy.power("cpu", 1)
    cpus = os.cpu_count() or 1
    if energy.RAPL.exists():
        pytest.skip("this machine has RAPL counters: its power is measured")
    assert not power.measured and "CodeCarbon" in power.source
    from codecarbon.core.cpu import TDP

    assert power.watts == pytest.approx(float(TDP().tdp or 4.0 * cpus) / cpus)  # one thread's share of the CPU
    assert energy.power("cpu", cpus).watts == pytest.approx(power.watts * cpus)
    assert power.energy_wh(3_600_000) == pytest.approx(power.watts)  # an hour at that power
    intensity, source = grid_intensity()
    assert intensity == 475 and "world average" in source  # CodeCarbon's figure when none is configured


def test_predictions_and_completions_record_their_energy_and_the_day_sums_it(
        live_server, celery_worker, sentiment_bytes, assistant) -> None:
    served = serve_model(OrganizationFactory(slug="greener"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    consumer = bearer_client(served)
    for text in ("a gripping, beautiful film", "dull and far too long"):
        assert consumer.post("/api/v1/models/sentiment/predict", {"inputs": [text]}, format="json").status_code == 200
    predictions = list(Prediction.objects.filter(organization=served.org))
    assert len(predictions) == 2 and all(p.energy_wh and p.energy_wh > 0 for p in predictions)
    per_thread = energy.power("cpu", 1).watts
    for p in predictions:
        assert p.energy_estimated is not energy.power("cpu", 1).measured
        if p.energy_estimated:  # the power model: a whole number of threads' shares, times the compute time
            threads = p.energy_wh * 3_600_000 / p.compute_ms / per_thread
            assert threads == pytest.approx(round(threads), abs=1e-6) and 1 <= round(threads) <= (os.cpu_count() or 1)
    day = UsageDaily.objects.get(organization=served.org, token__isnull=True)
    assert day.energy_wh == pytest.approx(sum(p.energy_wh for p in predictions), rel=1e-6)
    assert day.carbon_g == pytest.approx(day.energy_wh / 1000 * grid_intensity()[0], rel=1e-6)
    assert day.energy_estimated_wh == pytest.approx(day.energy_wh if predictions[0].energy_estimated else 0.0)
    usage = bearer_client(served, "admin").get("/api/v1/usage?days=1").json()
    assert usage["daily"][-1]["energy_wh"] == pytest.approx(day.energy_wh, rel=1e-4)
    assert usage["energy"]["grid_g_per_kwh"] == grid_intensity()[0]
    assert usage["models"][0]["model"] == "sentiment" and usage["models"][0]["energy_wh"] > 0
    assert usage["tokens"][0]["energy_wh"] == pytest.approx(day.energy_wh, rel=1e-4)

    # a completion too, on the generation worker
    answer = sdk(live_server, assistant).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0)
    stored = Completion.objects.get(pk=answer.model_extra["steward"]["completion"])
    assert stored.energy_wh and stored.energy_wh > 0
    generation = UsageDaily.objects.get(organization=assistant.org, token__isnull=True)
    assert generation.energy_wh == pytest.approx(stored.energy_wh, rel=1e-6)

    # the usage page and the model page show it, said as estimated where it is
    page = Client()
    page.force_login(served.actors["admin"].user)
    usage_page = page.get("/usage/").content.decode()
    assert 'data-testid="usage-energy"' in usage_page and "g CO2e" in usage_page
    if predictions[0].energy_estimated:
        assert "estimated" in usage_page
    assert 'data-testid="model-energy"' in page.get("/models/sentiment/").content.decode()
