"""A version's evaluation metrics, measured on the workers on a held-out file its owner uploads.

Classifiers: accuracy, macro F1, ROC AUC (binary: of the second label; more labels: one against the
rest, macro) and the expected calibration error of the predicted label's probability (10 equal-width
bins), with the rows and the file's SHA-256. When the job is done the figures are the version's
`metrics["evaluation"]`: the model card shows them and the compliance export carries them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.exceptions import InvalidInput, WorkerUnavailable, classifier_required
from inference.ml.schema import InputError, rows_from_records
from inference.models import Evaluation, ModelVersion, Task
from inference.services.jobs import rows_validate, upload_text
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobKind, job_beat, job_claim, job_finish, register, stored_input
from portal.platform import csvsafe
from portal.platform.locks import for_update
from portal.platform.workers import serving_queue

WORKER = AuditActor.system("inference worker")
MIN_ROWS = 10


def evaluation_parse(upload: BinaryIO, version: ModelVersion, label_column: str) -> tuple[list[Any], list[int], str]:
    """The rows (checked against the version's inputs), their labels as indexes, the file's SHA-256."""
    text, digest = upload_text(upload, max_bytes=settings.JOB_MAX_BYTES)
    try:
        header, records = csvsafe.read_dicts(text)
    except csvsafe.Unreadable as exc:
        raise InvalidInput(str(exc)) from None
    inputs = ["text"] if version.task == Task.TEXT else [f["name"] for f in version.input_schema["features"]]
    missing = [c for c in [*inputs, label_column] if c not in header]
    if missing:
        raise InvalidInput(gettext('The CSV file lacks the column(s) %(join)s.') % {"join": ', '.join(missing)}, details={"columns": header})
    if not MIN_ROWS <= len(records) <= settings.JOB_MAX_ROWS:
        raise InvalidInput(gettext('An evaluation needs %(MIN_ROWS)s to %(JOB_MAX_ROWS)s rows; this file has %(len)s.') % {"MIN_ROWS": MIN_ROWS, "JOB_MAX_ROWS": settings.JOB_MAX_ROWS, "len": len(records)})
    labels = list(version.labels)
    unknown = sorted({r[label_column].strip() for r in records} - set(labels))
    if unknown:
        raise InvalidInput(gettext("The column %(label_column)r holds values that are not the model's labels (%(join)s): %(join2)s.") % {"label_column": label_column, "join": ', '.join(labels), "join2": ', '.join(unknown[:5])})
    if version.task == Task.TEXT:
        rows: list[Any] = [r["text"] for r in records]
    else:
        try:
            rows = rows_from_records(version.input_schema, records)
        except InputError as exc:
            raise InvalidInput(str(exc)) from None
    return rows_validate(version, rows), [labels.index(r[label_column].strip()) for r in records], digest


def evaluation_create(*, actor: Actor, version: ModelVersion, upload: BinaryIO, name: str,
                      label_column: str = "label") -> Evaluation:
    """Checks the file, stores it and queues the evaluation.

    Raises:
        InvalidInput (400): a file that does not fit the model, or labels it does not know.
        WorkerUnavailable (503). Nothing is stored on any of them.
    """
    classifier_required(version, "Evaluations of accuracy")
    actor.require(Cap.MODEL_REGISTER, "evaluate model versions")
    rows, targets, digest = evaluation_parse(upload, version, label_column)
    queue = serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No inference worker is running; the evaluation was not created.'))
    content = json.dumps({"rows": rows, "targets": targets}).encode()
    path = f"evaluations/{actor.organization.pk}/{uuid.uuid4().hex}.json"
    with stored_input(path, content) as stored, transaction.atomic():
        evaluation = Evaluation.objects.create(
            organization=actor.organization, model_version=version, created_by=actor.user,
            dataset_name=(name or "heldout.csv")[:200], dataset_sha256=digest, dataset_path=stored,
            rows_total=len(rows))
        audit_record(
            action="evaluation.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.Evaluation", target_id=evaluation.pk,
            payload={"model": version.model.name, "version": version.version, "dataset": evaluation.dataset_name,
                     "dataset_sha256": digest, "rows": len(rows)})
        EVALUATIONS.send_on_commit(evaluation.pk, queue=queue)
    return evaluation


def classifier_metrics(proba: Any, targets: list[int], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1, ROC AUC and expected calibration error of class probabilities."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(targets)
    predicted = proba.argmax(axis=1)
    auc: float | None
    try:
        if len(labels) == 2:
            auc = float(roc_auc_score(y, proba[:, 1]))
        else:
            auc = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(len(labels)))))
    except ValueError:  # one class only in the file: AUC is undefined
        auc = None
    confidence = proba.max(axis=1)
    correct = (predicted == y).astype(float)
    bins = np.minimum((confidence * 10).astype(int), 9)
    ece = float(sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).sum()
                    for b in range(10) if (bins == b).any()) / len(y))
    return {
        "accuracy": round(float(accuracy_score(y, predicted)), 6),
        "f1_macro": round(float(f1_score(y, predicted, average="macro", labels=list(range(len(labels))),
                                         zero_division=0)), 6),
        "roc_auc": None if auc is None else round(auc, 6),
        "roc_auc_of": labels[1] if len(labels) == 2 else "each label against the rest (macro)",
        "calibration_error": round(ece, 6),
        "calibration_bins": 10,
    }


def evaluation_run(*, evaluation_id: int) -> None:
    """Predicts the file with the version's model and records its metrics (the task's body)."""
    from django.core.files.storage import default_storage

    from inference.services.prediction_runs import rows_predict_proba

    if not job_claim(Evaluation, evaluation_id, rows_done=0):
        return
    evaluation = Evaluation.objects.select_related("model_version__model").get(pk=evaluation_id)
    version = evaluation.model_version
    with default_storage.open(evaluation.dataset_path, "rb") as handle:
        content = json.loads(handle.read())

    def progress(done: int, total: int) -> None:
        job_beat(Evaluation, evaluation_id, rows_done=done)

    proba = rows_predict_proba(version=version, rows=content["rows"], progress=progress)
    result = {**classifier_metrics(proba, content["targets"], list(version.labels)),
              "rows": evaluation.rows_total, "dataset": evaluation.dataset_name,
              "dataset_sha256": evaluation.dataset_sha256, "evaluation": evaluation.pk}
    with transaction.atomic():
        if not job_finish(Evaluation, evaluation_id, result=result, rows_done=evaluation.rows_total):
            return
        locked = for_update(ModelVersion.objects.all()).get(pk=version.pk)
        locked.metrics = {**(locked.metrics or {}), "evaluation": result}
        locked.save(update_fields=["metrics"])
        audit_record(action="evaluation.completed", actor=WORKER, organization_id=evaluation.organization_id,
                     target_type="inference.Evaluation", target_id=evaluation_id,
                     payload={"model": version.model.name, "version": version.version, **result})


EVALUATIONS = register(JobKind(
    name="evaluation", model=Evaluation, target_type="inference.Evaluation",
    task="inference.tasks.evaluation_run_task", failed_action="evaluation.failed", actor=lambda job: WORKER,
    what="Evaluation", reset={"rows_done": 0},
))
