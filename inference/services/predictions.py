"""Predictions: admitted and queued by the web process, computed on a worker, receipted."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.log.services import AuditActor, audit_record
from inference.exceptions import InvalidInput, PredictionTimeout, WorkerUnavailable
from inference.ml.schema import InputError, validate_inputs
from inference.models import ModelVersion, Prediction, RegisteredModel
from inference.services.usage import quota_release, quota_reserve, usage_record
from portal.accounts.actor import Actor
from portal.accounts.models import User
from portal.jobs import JobStatus
from portal.platform.prebuilt import Insert, Prebuilt, Statement, commit_without_flush
from portal.platform.replies import Awaited, ReplyTimeout, reply_key, reply_wait
from portal.platform.workers import serving_queue

logger = logging.getLogger("steward.inference")


def prediction_inputs_check(*, version: ModelVersion, inputs: list[Any]) -> list[Any]:
    if not inputs:
        raise InvalidInput("Send at least one input.")
    if len(inputs) > settings.PREDICT_MAX_ROWS:
        raise InvalidInput(
            f"At most {settings.PREDICT_MAX_ROWS} inputs per request; use a batch job for more."
        )
    try:
        return validate_inputs(version.task, version.input_schema, inputs)
    except InputError as exc:
        raise InvalidInput(f"{exc}.", details={"inputs": exc.errors}) from None


_INSERT = Insert(Prediction)  # the admission's INSERT, built once (portal/platform/prebuilt.py)


def prediction_create(
    *, actor: Actor, version: ModelVersion, inputs: list[Any], subject: str = "", request_id: str = ""
) -> Awaited[Prediction]:
    """Admits a prediction: checks inputs, reserves quota, stores it pending, queues it.

    Raises:
        InvalidInput: inputs do not fit the model (400).
        QuotaExceeded: the organisation's daily rows are spent (429).
        WorkerUnavailable: no inference worker is alive (503).
    """
    clean = prediction_inputs_check(version=version, inputs=inputs)
    queue = serving_queue()
    if queue is None:
        raise WorkerUnavailable("No inference worker is running; try again shortly or tell an admin.")
    with transaction.atomic():
        commit_without_flush()  # the worker's durable finish flushes it (portal/platform/prebuilt.py, _NO_FLUSH)
        quota_reserve(organization=actor.organization, rows=len(clean))
        prediction = Prediction(
            organization=actor.organization, model_version=version, requested_by=actor.user,
            token=actor.token, request_id=request_id, inputs={"rows": clean, "subject": subject},
            rows=len(clean),
        )
        _INSERT.save(prediction)
        from inference.tasks import prediction_run_task

        prediction_id, reply_to = prediction.pk, reply_key()
        # The answer comes back on the reply key (portal/platform/replies.py); Celery's result backend stores nothing.
        transaction.on_commit(lambda: prediction_run_task.apply_async(
            (prediction_id,), {"reply_to": reply_to}, queue=queue, ignore_result=True))
    return Awaited(prediction, reply_to)


def prediction_wait(admitted: Awaited[Prediction]) -> dict[str, Any]:
    """Waits for a worker's answer; 504 (and the prediction marked failed) past the timeout.

    Raises:
        PredictionTimeout: no answer in PREDICT_TIMEOUT_SECONDS (504).
        WorkerFailed: the worker failed it (its error's status, else 500); it is marked failed.
    """
    timeout = settings.PREDICT_TIMEOUT_SECONDS
    try:
        answer = reply_wait(admitted.reply_to, timeout=timeout) if admitted.reply_to else None
    except ReplyTimeout:
        prediction_mark_failed(prediction_id=admitted.stored.pk, error="timed out waiting for a worker")
        raise PredictionTimeout(
            f"No worker answered within {timeout} s; the request was not served."
        ) from None
    if answer is None:  # the worker found it already failed (e.g. timed out, then redelivered)
        raise PredictionTimeout("The prediction was not served in time.")
    return answer  # type: ignore[no-any-return]


def prediction_response(prediction: Prediction) -> dict[str, Any]:
    version = prediction.model_version
    return {
        "id": prediction.pk,
        "model": version.model.name,
        "version": version.version,
        "request_id": prediction.request_id,
        "status": prediction.status,
        "predictions": prediction.outputs or [],
        "device": prediction.device,
        "compute_ms": prediction.compute_ms,
        "receipt": {"index": prediction.audit_index, "leaf_hash": prediction.audit_leaf_hash}
        if prediction.audit_index is not None else None,
    }


def _actor_of(prediction: Prediction) -> AuditActor:
    if prediction.token_id:
        return AuditActor(type="token", id=str(prediction.token_id), label=f"{prediction.requested_by.username} via token")
    return AuditActor(type="user", id=str(prediction.requested_by_id), label=prediction.requested_by.username)


# What a worker reads to run and finish a prediction, built once per process (portal/platform/prebuilt.py):
# the ORM's compiling of the claim and the read cost more of a worker's time than running them.
_CLAIM = Statement("UPDATE {Prediction} SET {Prediction.status} = %s WHERE {Prediction.id} = %s AND {Prediction.status} = %s",
                   names=[Prediction], no_flush=True)  # the finish's durable commit flushes it
_RUN_READ = Prebuilt(
    [(Prediction, "p", ("organization", "model_version", "requested_by", "token", "request_id", "inputs", "rows",
                        "status", "outputs", "device", "compute_ms", "audit_index", "audit_leaf_hash", "finished_at")),
     (ModelVersion, "v", ("version", "task", "labels", "artifact", "artifact_sha256", "model", "status")),
     (RegisteredModel, "m", ("name",)),
     (User, "u", ("username",))],
    "FROM {Prediction} p INNER JOIN {ModelVersion} v ON v.{ModelVersion.id} = p.{Prediction.model_version} "
    "INNER JOIN {RegisteredModel} m ON m.{RegisteredModel.id} = v.{ModelVersion.model} "
    "INNER JOIN {User} u ON u.{User.id} = p.{Prediction.requested_by} WHERE p.{Prediction.id} = %s",
)
_FINISH = Statement(
    "UPDATE {Prediction} SET {Prediction.outputs} = %s, {Prediction.status} = %s, {Prediction.compute_ms} = %s, "
    "{Prediction.device} = %s, {Prediction.audit_index} = %s, {Prediction.audit_leaf_hash} = %s, "
    "{Prediction.finished_at} = %s WHERE {Prediction.id} = %s", names=[Prediction])
_FINISH_FIELDS = ("outputs", "status", "compute_ms", "device", "audit_index", "audit_leaf_hash", "finished_at")


def _run_read(prediction_id: int) -> Prediction:
    found = _RUN_READ.fetch_one([prediction_id])
    if found is None:
        raise Prediction.DoesNotExist(f"No prediction {prediction_id}.")
    (prediction, version, model, user), _ = found
    assert isinstance(prediction, Prediction) and isinstance(version, ModelVersion)
    ModelVersion.model.field.set_cached_value(version, model)
    Prediction.model_version.field.set_cached_value(prediction, version)
    Prediction.requested_by.field.set_cached_value(prediction, user)
    return prediction


def prediction_run(*, prediction_id: int) -> dict[str, Any] | None:
    """Computes a prediction on this worker (the task's body). A redelivered task is a no-op.

    The model runs in the model's dynamic batch; the bookkeeping (outputs, receipt in the audit
    log, metering) runs in a second batch, one transaction for all predictions finished together.
    """
    claimed = _CLAIM.execute([JobStatus.RUNNING.value, prediction_id, JobStatus.PENDING.value])
    from inference.ml.predictors import predictions_from_proba
    from inference.runtime import loaded_model, prediction_finisher

    prediction = _run_read(prediction_id)
    if claimed != 1:
        return prediction_response(prediction) if prediction.status == JobStatus.DONE else None

    loaded = loaded_model(prediction.model_version)  # a first load is not the caller's compute
    started = time.perf_counter()
    proba, seconds = loaded.batcher.submit_timed(prediction.inputs["rows"], timeout=settings.PREDICT_TIMEOUT_SECONDS)
    outputs = [p.__dict__ for p in predictions_from_proba(loaded.predictor.labels, proba)]
    # metered: its rows' share of the passes that ran them; the latency also counts the wait for a batch
    compute_ms, latency_ms = round(seconds * 1000, 3), round((time.perf_counter() - started) * 1000, 3)
    finished = _Finished(prediction, outputs, compute_ms, latency_ms, loaded.predictor.device)
    return prediction_finisher(prediction_finish_many).submit([finished], timeout=settings.PREDICT_TIMEOUT_SECONDS)[0]  # type: ignore[no-any-return]


class _Finished:
    __slots__ = ("compute_ms", "device", "latency_ms", "outputs", "prediction")

    def __init__(self, prediction: Prediction, outputs: list[dict[str, Any]], compute_ms: float, latency_ms: float,
                 device: str) -> None:
        self.prediction, self.outputs, self.device = prediction, outputs, device
        self.compute_ms, self.latency_ms = compute_ms, latency_ms


def prediction_finish_many(items: list[_Finished]) -> list[dict[str, Any]]:
    """Stores outputs, appends the receipts and meters usage for a batch, in one transaction."""
    from django.db import close_old_connections

    from audit.log.services import AuditRecord, audit_record_many

    close_old_connections()  # this runs on the finisher's own thread, outside any request
    now = timezone.now()
    with transaction.atomic():
        receipts = audit_record_many([
            AuditRecord(
                action="prediction.completed", actor=_actor_of(item.prediction),
                organization_id=item.prediction.organization_id, target_type="inference.Prediction",
                target_id=item.prediction.pk, request_id=item.prediction.request_id,
                payload={"model": item.prediction.model_version.model.name,
                         "version": item.prediction.model_version.version,
                         "inputs": item.prediction.inputs["rows"], "outputs": item.outputs,
                         "latency_ms": item.latency_ms, "compute_ms": item.compute_ms, "device": item.device,
                         # tried in the playground by an owner or a reviewer before approval
                         **({} if item.prediction.model_version.is_servable else
                            {"approved": False, "version_status": item.prediction.model_version.status})},
                subject=item.prediction.inputs.get("subject") or None,
            )
            for item in items
        ])
        for item, receipt in zip(items, receipts, strict=True):
            p = item.prediction
            p.outputs, p.status, p.compute_ms, p.device = item.outputs, JobStatus.DONE, item.compute_ms, item.device
            p.audit_index, p.audit_leaf_hash, p.finished_at = receipt.index, receipt.leaf_hash, now
        if len(items) == 1:  # a plain UPDATE, built once: bulk_update's CASE expressions cost ~2 ms more to build
            p = items[0].prediction
            _FINISH.execute([*(Prediction._meta.get_field(name).get_db_prep_save(getattr(p, name), connection)  # type: ignore[union-attr]
                               for name in _FINISH_FIELDS), p.pk])
        else:
            Prediction.objects.bulk_update([item.prediction for item in items], list(_FINISH_FIELDS))
        metered: dict[tuple[int, int | None], list[Any]] = {}
        for item in items:
            key = (item.prediction.organization_id, item.prediction.token_id)
            entry = metered.setdefault(key, [0, 0, 0.0])
            entry[0] += 1
            entry[1] += item.prediction.rows
            entry[2] += item.compute_ms
        for (organization_id, token_id), (requests, rows, compute_ms) in metered.items():
            usage_record(organization_id=organization_id, token_id=token_id, rows=rows, compute_ms=compute_ms,
                         requests=requests)
    return [prediction_response(item.prediction) for item in items]


def prediction_mark_failed(*, prediction_id: int, error: str) -> None:
    """A prediction that will not be served: marked failed, its quota given back, and logged.

    Its entry is written in the same transaction; if the audit log itself is what failed (the
    reason it was not served, often), the prediction is still marked failed and its quota given
    back, without the entry, and the worker's log says so: a prediction is never left running
    while its caller hears that it failed.
    """
    try:
        _mark_failed(prediction_id, error, audited=True)
    except Exception:
        logger.exception("prediction %s: its failure could not be audited; marking it failed without an entry",
                         prediction_id)
        _mark_failed(prediction_id, error, audited=False)


def _mark_failed(prediction_id: int, error: str, *, audited: bool) -> None:
    with transaction.atomic():
        updated = Prediction.objects.filter(
            pk=prediction_id, status__in=[JobStatus.PENDING, JobStatus.RUNNING]
        ).update(status=JobStatus.FAILED, error=error[:2000], finished_at=timezone.now())
        if not updated:
            return
        prediction = Prediction.objects.select_related("requested_by").get(pk=prediction_id)
        quota_release(organization_id=prediction.organization_id, rows=prediction.rows)
        if audited:
            audit_record(
                action="prediction.failed", actor=_actor_of(prediction), organization_id=prediction.organization_id,
                target_type="inference.Prediction", target_id=prediction.pk, request_id=prediction.request_id,
                payload={"error": error[:500]},
            )


def prediction_fail_stuck(*, older_than_seconds: float = 600) -> int:
    """Fails predictions left pending or running by a web and worker that both went away.

    The web marks a prediction failed when it stops waiting; this sweeper covers the case where
    nobody was left to wait (the periodic task runs it every minute).
    """
    from datetime import timedelta

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = list(
        Prediction.objects.filter(
            status__in=[JobStatus.PENDING, JobStatus.RUNNING], created_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for prediction_id in stuck:
        prediction_mark_failed(prediction_id=prediction_id, error="abandoned: no worker finished it in time")
    return len(stuck)


def rows_predict_proba(
    *, version: ModelVersion, rows: list[Any], chunk: int = 256, progress: Any = None
) -> Any:
    """Class probabilities (rows x labels) for already validated rows, on this worker's model.

    For evidence that runs on the workers (bias reports, global explanations): the rows go through
    the model's own batcher, so they share the model with live traffic instead of loading a copy.
    """
    import numpy as np

    from inference.runtime import loaded_model

    loaded = loaded_model(version)
    parts = []
    for start in range(0, len(rows), chunk):
        parts.append(loaded.batcher.submit(rows[start : start + chunk], timeout=settings.PREDICT_TIMEOUT_SECONDS * 4))
        if progress:
            progress(min(start + chunk, len(rows)), len(rows))
    return np.concatenate(parts) if parts else np.zeros((0, len(version.labels)))
