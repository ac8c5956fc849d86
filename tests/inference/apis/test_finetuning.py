"""Private fine-tuning through the REST API on a real worker, and the ledger under concurrent submissions."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.db import connection, transaction

from audit.log.models import LogEntry
from inference.exceptions import BudgetExceeded
from inference.ml import dp_accounting
from inference.ml.training import read_sst2
from inference.models import FineTuneJob, PrivacyLedgerEntry, TrainingDataset
from inference.services import training_datasets
from tests.inference.factories import bearer_client, csv_upload, serve_model, stored_files
from tests.portal.accounts.factories import OrganizationFactory
from tests.waits import patience

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def sst2_rows(n: int) -> list[dict]:
    rows = read_sst2(settings.BASE_DIR / "data" / "sst2" / "train_subset.tsv")[:n]
    return [{"text": text, "label": ["NEGATIVE", "POSITIVE"][label]} for text, label in rows]


@pytest.fixture
def sentiment(db, sentiment_bytes):
    return serve_model(OrganizationFactory(slug="clinic"), name="sentiment", task="text-classification",
                       archive=sentiment_bytes)


def upload(api, rows, **extra):
    body = {"model": "sentiment", "file": csv_upload(rows, "notes.csv"), "epsilon_cap": 8, "delta_cap": 1e-3, **extra}
    return api.post("/api/v1/training-datasets", body, format="multipart")


def test_fine_tune_end_to_end(celery_worker, sentiment) -> None:
    owner = bearer_client(sentiment, "owner")
    created = upload(owner, sst2_rows(70))
    assert created.status_code == 201, created.content
    dataset = created.json()
    assert dataset["train_rows"] == 63 and dataset["holdout_rows"] == 7
    assert "rows" not in dataset and "Roger" not in str(dataset)  # the rows are never shown back
    # when: a run of 1 epoch at batch 32 (2 steps) at epsilon 3
    response = owner.post("/api/v1/fine-tunes", {"dataset": dataset["id"], "model": "sentiment", "base_version": 1,
                                                 "target_epsilon": 3, "epochs": 1, "batch_size": 32}, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["steps_total"] == 2 and job["plan"]["noise_multiplier"] > 0
    deadline = time.monotonic() + patience(300)
    while job["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = owner.get(f"/api/v1/fine-tunes/{job['id']}").json()
    # then: a new draft version whose card states the guarantee, and a settled ledger
    assert job["status"] == "done", job
    assert job["steps_done"] == 2 and 0 < job["epsilon_spent"] <= 3
    version = owner.get(f"/api/v1/models/sentiment/versions/{job['result_version']}").json()
    assert version["status"] == "draft"
    ledger = owner.get(f"/api/v1/training-datasets/{dataset['id']}").json()
    assert ledger["ledger"][0]["state"] == "settled" and ledger["ledger"][0]["steps_spent"] == 2
    assert ledger["budget"]["epsilon_spent"] == pytest.approx(job["epsilon_spent"], rel=1e-6)
    from inference.models import ModelVersion

    stored = ModelVersion.objects.get(model__name="sentiment", version=job["result_version"])
    guarantee = stored.privacy
    assert guarantee["accountant"].startswith("RDP") and guarantee["steps"] == 2
    assert guarantee["lr_schedule"] == "constant" and guarantee["learning_rate"] == 5e-4  # the defaults
    assert "book-keeping clipping" in guarantee["mechanism"]  # a BERT encoder: every layer is one it clips
    # secure mode's draws (inference/ml/secure_random.py): on with PostgreSQL, as in production; off embedded
    assert guarantee["secure_mode"] is settings.DP_SECURE_MODE is (connection.vendor == "postgresql")
    assert guarantee["dataset_sha256"] == dataset["sha256"] and guarantee["delta"] == 1e-3
    assert 0 <= guarantee["holdout_accuracy"] <= 1 and 0 <= guarantee["base_holdout_accuracy"] <= 1
    assert "differential privacy" in stored.card["training_data"]
    actions = set(LogEntry.objects.values_list("action", flat=True))
    assert {"training_dataset.created", "finetune.requested", "privacy.settled", "finetune.completed"} <= actions
    # and a second run that would exceed the cap is refused, saying what still fits
    refused = owner.post("/api/v1/fine-tunes", {"dataset": dataset["id"], "model": "sentiment", "base_version": 1,
                                                "target_epsilon": 7.9, "epochs": 1, "batch_size": 32}, format="json")
    assert refused.status_code == 409, refused.content
    message = refused.json()["error"]["message"]
    assert "exceed the privacy budget" in message and "still fits" in message
    assert FineTuneJob.objects.count() == 1


def test_cancelling_releases_only_what_was_not_spent(celery_worker, sentiment) -> None:
    owner = bearer_client(sentiment, "owner")
    dataset = upload(owner, sst2_rows(200)).json()
    job = owner.post("/api/v1/fine-tunes", {"dataset": dataset["id"], "model": "sentiment", "base_version": 1,
                                            "target_epsilon": 4, "epochs": 5, "batch_size": 8},
                     format="json").json()
    deadline = time.monotonic() + patience(120)
    while job["steps_done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
        job = owner.get(f"/api/v1/fine-tunes/{job['id']}").json()
    assert owner.post(f"/api/v1/fine-tunes/{job['id']}/cancel").status_code == 200
    while job["status"] not in ("cancelled", "done", "failed") and time.monotonic() < deadline + 60:
        time.sleep(0.3)
        job = owner.get(f"/api/v1/fine-tunes/{job['id']}").json()
    assert job["status"] == "cancelled" and job["result_version"] is None
    entry = PrivacyLedgerEntry.objects.get(job_id=job["id"])
    assert entry.state == "settled" and 1 <= entry.steps_spent < entry.steps_reserved
    assert owner.post(f"/api/v1/fine-tunes/{job['id']}/cancel").status_code == 409


@pytest.mark.parametrize(("extra", "needle"), [
    ({"epsilon_cap": 0}, "epsilon cap must be between"),
    ({"epsilon_cap": 500}, "epsilon cap must be between"),
    ({"delta_cap": 0.5}, "delta cap must be above 0 and at most"),
    ({"delta_cap": 1e-3, "rows": 2000}, "below 1/rows"),
    ({"rows": 5}, "at least 20 rows"),
    ({"bad_label": True}, "not one of the model's labels"),
])
def test_bad_datasets_are_refused_and_nothing_is_stored(celery_worker, sentiment, extra, needle) -> None:
    owner = bearer_client(sentiment, "owner")
    before = stored_files("training")
    rows = sst2_rows(extra.pop("rows", 40))
    if extra.pop("bad_label", False):
        rows[3]["label"] = "MAYBE"
    response = upload(owner, rows, **extra)
    assert response.status_code == 400, response.content
    assert needle in response.json()["error"]["message"]
    assert TrainingDataset.objects.count() == 0 and stored_files("training") == before
    assert not LogEntry.objects.filter(action="training_dataset.created").exists()


def test_bad_runs_are_refused_before_anything_runs(celery_worker, sentiment, tabular) -> None:
    owner = bearer_client(sentiment, "owner")
    dataset = upload(owner, sst2_rows(60)).json()
    base = {"dataset": dataset["id"], "model": "sentiment", "base_version": 1, "target_epsilon": 2}
    for change, status, needle in [
        ({"target_epsilon": 9}, 400, "target_epsilon must be between"),
        ({"target_delta": 0.01}, 400, "target_delta must be above 0"),
        ({"batch_size": 10_000}, 400, "batch_size must be between"),
        ({"learning_rate": 5}, 400, "learning_rate must be between"),
        ({"lr_schedule": "cosine"}, 400, "lr_schedule"),
    ]:
        response = owner.post("/api/v1/fine-tunes", {**base, **change}, format="json")
        assert response.status_code == status, (change, response.content)
        assert needle in response.json()["error"]["message"]
    # a TorchScript tabular model cannot be trained by Opacus: said at upload
    credit = bearer_client(tabular, "owner")
    rows = [{"text": "x", "label": "grant"}] * 30
    response = credit.post("/api/v1/training-datasets", {"model": "credit", "file": csv_upload(rows),
                                                          "epsilon_cap": 1, "delta_cap": 1e-5}, format="multipart")
    assert response.status_code == 409 and "Hugging Face" in response.json()["error"]["message"]
    assert FineTuneJob.objects.count() == 0 and PrivacyLedgerEntry.objects.count() == 0


def test_concurrent_reservations_never_overspend(sentiment) -> None:
    """Six submissions at once on a budget that holds two: exactly two reserve, the ledger stays within the cap."""
    # given: a dataset (made directly: the ledger is under test, not the upload)
    from inference.models import ModelVersion

    version = ModelVersion.objects.get(model__name="sentiment", version=1)
    owner = sentiment.actors["owner"]
    dataset = TrainingDataset.objects.create(
        organization=sentiment.org, model=version.model, name="records", path="training/x.json", sha256="0" * 64,
        train_rows=1000, holdout_rows=100, epsilon_cap=5.0, delta_cap=1e-5, created_by=owner.user)
    plan = dp_accounting.plan_run(target_epsilon=2.2, target_delta=1e-5, rows=1000, epochs=1, batch_size=50,
                            learning_rate=1e-3, max_grad_norm=1.0)
    two = dp_accounting.composed_epsilon([(plan.noise_multiplier, plan.sample_rate, plan.steps)] * 2, 1e-5)
    three = dp_accounting.composed_epsilon([(plan.noise_multiplier, plan.sample_rate, plan.steps)] * 3, 1e-5)
    dataset.epsilon_cap = (two + three) / 2  # RDP composes sublinearly: set the cap between two runs and three
    dataset.save(update_fields=["epsilon_cap"])
    jobs = [FineTuneJob.objects.create(organization=sentiment.org, dataset=dataset, base_version=version,
                                       plan=plan.as_dict(), created_by=owner.user) for _ in range(6)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(jobs))

    def submit(job: FineTuneJob) -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                training_datasets.privacy_reserve(dataset=dataset, job=job, plan=plan)
            outcomes.append("reserved")
        except BudgetExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(outcomes) == ["refused"] * 4 + ["reserved"] * 2
    assert training_datasets.budget_summary(dataset)["epsilon_committed"] <= dataset.epsilon_cap
