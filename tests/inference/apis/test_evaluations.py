"""A version's metrics measured on a held-out file, on a real worker: they become the version's, with the file's hash."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from audit.log.models import LogEntry
from inference.models import Evaluation, ModelVersion
from tests.inference.factories import bearer_client
from tests.waits import finished

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

INCOMES = list(range(0, 100, 5))
WRONG = {10, 55, 80}  # rows whose true label the tiny model gets wrong


def heldout() -> bytes:
    lines = ["income,region,outcome"]
    for income in INCOMES:
        right = "grant" if income > 50 else "deny"
        label = ({"grant": "deny", "deny": "grant"}[right]) if income in WRONG else right
        lines.append(f"{income},{'north' if income % 2 else 'south'},{label}")
    return ("\n".join(lines) + "\n").encode()


def upload(content: bytes, name: str = "heldout.csv") -> io.BytesIO:
    file = io.BytesIO(content)
    file.name = name
    return file




def test_an_owner_measures_a_versions_metrics_on_held_out_rows(celery_worker, tabular) -> None:
    owner = bearer_client(tabular, "owner")
    content = heldout()
    created = owner.post("/api/v1/models/credit/versions/1/evaluations",
                         {"file": upload(content), "label_column": "outcome"}, format="multipart")
    assert created.status_code == 202, created.content
    body = finished(owner, created.json()["url"])
    assert body["status"] == "done", body
    metrics = body["result"]
    # the same figures, computed here from the model's own probabilities
    rows = [{"income": i, "region": "north" if i % 2 else "south"} for i in INCOMES]
    predicted = owner.post("/api/v1/models/credit/predict", {"inputs": rows}, format="json").json()["predictions"]
    grant = np.array([p["scores"]["grant"] for p in predicted])
    truth = np.array([(i > 50) != (i in WRONG) for i in INCOMES])
    assert metrics["accuracy"] == pytest.approx(17 / 20)
    says_grant = grant > 0.5  # the predicted label is the most probable; a tie goes to the first (deny)
    assert metrics["f1_macro"] == pytest.approx(f1_score(truth, says_grant, average="macro"), abs=1e-6)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, grant), abs=1e-6)
    confidence = np.maximum(grant, 1 - grant)
    correct = says_grant == truth
    bins = np.minimum((confidence * 10).astype(int), 9)
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).sum()
              for b in range(10) if (bins == b).any()) / len(truth)
    assert metrics["calibration_error"] == pytest.approx(ece, abs=1e-6)
    assert metrics["dataset_sha256"] == hashlib.sha256(content).hexdigest() and metrics["rows"] == 20
    # the version's metrics, on its card and in the log
    stored = ModelVersion.objects.get(pk=tabular.version.pk).metrics["evaluation"]
    assert stored == metrics
    entry = LogEntry.objects.get(action="evaluation.completed", target_id=str(body["id"]))
    assert entry.payload["accuracy"] == metrics["accuracy"]
    from django.test import Client

    page = Client()
    page.force_login(tabular.actors["owner"].user)
    card = page.get("/models/credit/").content.decode()
    assert 'data-testid="evaluation-metrics"' in card and "accuracy 0.8500" in card
    # and the compliance evidence no longer lacks them
    from django.utils import timezone

    from audit.exports import document as evidence_document

    today = timezone.localdate()
    built = evidence_document.build(version=ModelVersion.objects.get(pk=tabular.version.pk), number=1,
                                    period=(today, today), generated_by="test", excerpt=[])
    # one level of names and numbers, as the schema has it (a nested group was refused by the export's check)
    assert built["evaluation"]["metrics"]["evaluation.accuracy"] == metrics["accuracy"]
    from audit.exports.services import _validate

    _validate(built)
    assert not any("No evaluation metrics" in issue["message"] for issue in built["issues"])
    annex = {row["item"]: row for row in built["regulatory_mapping"]["eu_ai_act_annex_iv"]}
    assert "evaluation metrics" not in annex["4"]["missing"]


@pytest.mark.parametrize(("content", "label_column", "needle"), [
    (b"income,region\n" + b"10,north\n" * 12, "outcome", "lacks the column(s) outcome"),
    (b"income,region,outcome\n" + b"10,north,maybe\n" * 12, "outcome", "not the model's labels"),
    (b"income,region,outcome\n" + b"10,north,grant\n" * 3, "outcome", "10 to"),
    (b"income,region,outcome\n" + b"lots,north,grant\n" * 12, "outcome", "not a number"),
])
def test_a_file_that_cannot_be_evaluated_is_refused_and_nothing_is_stored(celery_worker, tabular, content,
                                                                          label_column, needle) -> None:
    owner = bearer_client(tabular, "owner")
    response = owner.post("/api/v1/models/credit/versions/1/evaluations",
                          {"file": upload(content), "label_column": label_column}, format="multipart")
    assert response.status_code == 400 and needle in response.json()["error"]["message"], response.content
    assert not Evaluation.objects.exists() and not LogEntry.objects.filter(action="evaluation.requested").exists()


def test_only_those_who_register_models_evaluate_them(celery_worker, tabular) -> None:
    for role in ("consumer", "reviewer", "auditor"):
        response = bearer_client(tabular, role).post("/api/v1/models/credit/versions/1/evaluations",
                                                      {"file": upload(heldout()), "label_column": "outcome"},
                                                      format="multipart")
        assert response.status_code == 403, (role, response.content)
    assert not Evaluation.objects.exists()
