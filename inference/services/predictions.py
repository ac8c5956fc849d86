"""Predictions, the web side: admitted, queued, waited for, failed when nobody answers.

The worker side (claim, run, finish with receipts) is inference/services/prediction_runs.py.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference import languages
from inference.exceptions import InvalidInput, PredictionTimeout, WorkerUnavailable, classifier_required
from inference.ml.schema import InputError, validate_inputs
from inference.models import ModelVersion, Prediction, Task
from inference.services.usage import quota_release, quota_reserve
from portal.accounts.actor import Actor
from portal.jobs import JobStatus
from portal.platform.prebuilt import Insert, commit_without_flush
from portal.platform.replies import Awaited, ReplyTimeout, reply_key, reply_wait
from portal.platform.workers import serving_queue

logger = logging.getLogger("steward.inference")


def prediction_inputs_check(*, version: ModelVersion, inputs: list[Any], embedding: bool = False) -> list[Any]:
    """Inputs checked against the version (400 else). `embedding`: the caller is /v1/embeddings, which
    serves text-embedding versions on this same path; every other caller serves classifiers."""
    if not embedding:
        classifier_required(version, "Predictions")
    if not inputs:
        raise InvalidInput(gettext('Send at least one input.'))
    if len(inputs) > settings.PREDICT_MAX_ROWS:
        raise InvalidInput(
            gettext('At most %(PREDICT_MAX_ROWS)s inputs per request; use a batch job for more.') % {"PREDICT_MAX_ROWS": settings.PREDICT_MAX_ROWS}
        )
    try:
        return validate_inputs(version.task, version.input_schema, inputs)
    except InputError as exc:
        raise InvalidInput(gettext('%(exc)s.') % {"exc": exc}, details={"inputs": exc.errors}) from None


_INSERT = Insert(Prediction)  # the admission's INSERT, built once (portal/platform/prebuilt.py)


def prediction_create(
    *, actor: Actor, version: ModelVersion, inputs: list[Any], subject: str = "", request_id: str = "",
    embedding: bool = False,
) -> Awaited[Prediction]:
    """Admits a prediction: checks inputs, reserves quota, stores it pending, queues it.

    Raises:
        InvalidInput: inputs do not fit the model (400).
        QuotaExceeded: the organisation's daily rows are spent (429).
        WorkerUnavailable: no inference worker is alive (503).
    """
    clean = prediction_inputs_check(version=version, inputs=inputs, embedding=embedding)
    flagged = languages_flagged(version, clean)
    queue = serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No inference worker is running; try again shortly or tell an admin.'))
    with transaction.atomic():
        commit_without_flush()  # the worker's durable finish flushes it (portal/platform/prebuilt.py, _NO_FLUSH)
        quota_reserve(organization=actor.organization, rows=len(clean))
        prediction = Prediction(
            organization=actor.organization, model_version=version, requested_by=actor.user,
            token=actor.token, request_id=request_id, inputs={"rows": clean, "subject": subject},
            rows=len(clean), unsupported_language=flagged[0]["detected"] if flagged else "",
        )
        _INSERT.save(prediction)
        from inference.tasks import prediction_run_task

        prediction_id, reply_to = prediction.pk, reply_key()
        # The answer comes back on the reply key (portal/platform/replies.py); Celery's result backend stores nothing.
        transaction.on_commit(lambda: prediction_run_task.apply_async(
            (prediction_id,), {"reply_to": reply_to}, queue=queue, ignore_result=True))
    return Awaited(prediction, reply_to)


def languages_flagged(version: ModelVersion, inputs: list[Any]) -> list[dict[str, Any]]:
    """The text inputs in a language the version's card does not list (inference/languages.py)."""
    if version.task not in (Task.TEXT, Task.EMBEDDING):
        return []
    return languages.unsupported(version.card, inputs)


def language_notice(prediction: Prediction) -> dict[str, Any] | None:
    """What the answer says of its inputs' languages, when one is not the model's. Only a flagged
    prediction reads its inputs again (the row keeps the first language flagged, for counting)."""
    if not prediction.unsupported_language:
        return None
    return languages.notice(prediction.model_version.card,
                            languages_flagged(prediction.model_version, prediction.inputs.get("rows") or []))


def prediction_wait(admitted: Awaited[Prediction]) -> PredictionResult:
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
            gettext('No worker answered within %(timeout)s s; the request was not served.') % {"timeout": timeout}
        ) from None
    if answer is None:  # the worker found it already failed (e.g. timed out, then redelivered)
        raise PredictionTimeout(gettext('The prediction was not served in time.'))
    return answer  # type: ignore[no-any-return]


class PredictionResult(TypedDict):
    """What a worker answers a waiting request with, and what the API renders (inference/outputs.PredictionOutput)."""

    id: int
    model: str
    version: int
    request_id: str
    status: str
    predictions: list[dict[str, Any]]
    device: str
    compute_ms: float | None
    receipt: dict[str, Any] | None


def prediction_result(prediction: Prediction) -> PredictionResult:
    version = prediction.model_version
    return PredictionResult(
        id=prediction.pk, model=version.model.name, version=version.version, request_id=prediction.request_id,
        status=prediction.status, predictions=prediction.outputs or [], device=prediction.device,
        compute_ms=prediction.compute_ms,
        receipt={"index": prediction.audit_index, "leaf_hash": prediction.audit_leaf_hash}
        if prediction.audit_index is not None else None,
    )


def prediction_actor(prediction: Prediction) -> AuditActor:
    if prediction.token_id:
        return AuditActor(type="token", id=str(prediction.token_id), label=f"{prediction.requested_by.username} via token")
    return AuditActor(type="user", id=str(prediction.requested_by_id), label=prediction.requested_by.username)


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
                action="prediction.failed", actor=prediction_actor(prediction), organization_id=prediction.organization_id,
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


