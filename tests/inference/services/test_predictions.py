"""Prediction bookkeeping that needs no worker: the sweeper of abandoned predictions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.log.models import LogEntry
from inference.models import Prediction, UsageDaily
from inference.services.predictions import prediction_fail_stuck
from inference.services.usage import quota_reserve

pytestmark = pytest.mark.django_db


class PredictionFailStuckTests:
    def test_abandoned_predictions_fail_and_give_back_their_quota(self, tabular) -> None:
        # given: one prediction abandoned 20 minutes ago, one fresh
        consumer = tabular.actors["consumer"]
        quota_reserve(organization=tabular.org, rows=3)

        def make(rows: int, age: timedelta) -> Prediction:
            prediction = Prediction.objects.create(
                organization=tabular.org, model_version=tabular.version, requested_by=consumer.user,
                inputs={"rows": [{}] * rows, "subject": ""}, rows=rows, status="running",
            )
            Prediction.objects.filter(pk=prediction.pk).update(created_at=timezone.now() - age)
            return prediction

        old, fresh = make(2, timedelta(minutes=20)), make(1, timedelta(seconds=5))
        # when
        failed = prediction_fail_stuck(older_than_seconds=600)
        # then
        assert failed == 1
        old.refresh_from_db()
        fresh.refresh_from_db()
        assert old.status == "failed" and "abandoned" in old.error and fresh.status == "running"
        assert UsageDaily.objects.get(organization=tabular.org, token__isnull=True).rows == 1
        assert LogEntry.objects.filter(action="prediction.failed", target_id=str(old.pk)).exists()
        assert prediction_fail_stuck(older_than_seconds=600) == 0  # idempotent
