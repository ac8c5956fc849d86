"""Predictions, the worker side: claimed, run in the model's dynamic batch, finished with receipts.

The web side (admission, the wait, failure) is inference/services/predictions.py.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from inference.exceptions import InvalidInput
from inference.models import ModelVersion, Prediction, RegisteredModel, Task
from inference.services.energy import Footprint, footprints
from inference.services.predictions import PredictionResult, prediction_actor, prediction_result
from inference.services.usage import quota_release, usage_record
from portal.accounts.models import User
from portal.jobs import JobStatus
from portal.platform.prebuilt import Prebuilt, Statement

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
    "{Prediction.finished_at} = %s, {Prediction.energy_wh} = %s, {Prediction.energy_estimated} = %s "
    "WHERE {Prediction.id} = %s", names=[Prediction])
_FINISH_FIELDS = ("outputs", "status", "compute_ms", "device", "audit_index", "audit_leaf_hash", "finished_at",
                  "energy_wh", "energy_estimated")


def _run_read(prediction_id: int) -> Prediction:
    found = _RUN_READ.fetch_one([prediction_id])
    if found is None:
        raise Prediction.DoesNotExist(gettext('No prediction %(prediction_id)s.') % {"prediction_id": prediction_id})
    (prediction, version, model, user), _ = found
    assert isinstance(prediction, Prediction) and isinstance(version, ModelVersion)
    ModelVersion.model.field.set_cached_value(version, model)
    Prediction.model_version.field.set_cached_value(prediction, version)
    Prediction.requested_by.field.set_cached_value(prediction, user)
    return prediction


def prediction_run(*, prediction_id: int) -> PredictionResult | None:
    """Computes a prediction on this worker (the task's body). A redelivered task is a no-op.

    The model runs in the model's dynamic batch; the bookkeeping (outputs, receipt in the audit
    log, metering) runs in a second batch, one transaction for all predictions finished together.
    """
    claimed = _CLAIM.execute([JobStatus.RUNNING.value, prediction_id, JobStatus.PENDING.value])
    from inference.ml.predictors import predictions_from_proba
    from inference.runtime import loaded_model, prediction_finisher

    prediction = _run_read(prediction_id)
    if claimed != 1:
        return prediction_result(prediction) if prediction.status == JobStatus.DONE else None

    loaded = loaded_model(prediction.model_version)  # a first load is not the caller's compute
    rows = prediction.inputs["rows"]
    tokens = _tokens_checked(prediction, loaded.predictor, rows) if prediction.model_version.task == Task.EMBEDDING else None
    started = time.perf_counter()
    proba, seconds = loaded.batcher.submit_timed(rows, timeout=settings.PREDICT_TIMEOUT_SECONDS)
    if tokens is None:
        outputs = [p.__dict__ for p in predictions_from_proba(loaded.predictor.labels, proba)]
    else:  # vectors, as float32 (what the model computed), with the tokens each text took
        outputs = [{"embedding": [float(x) for x in row.astype("float32")], "tokens": n}
                   for row, n in zip(proba, tokens, strict=True)]
    # metered: its rows' share of the passes that ran them; the latency also counts the wait for a batch
    compute_ms, latency_ms = round(seconds * 1000, 3), round((time.perf_counter() - started) * 1000, 3)
    finished = _Finished(prediction, outputs, compute_ms, latency_ms, loaded.predictor.device)
    return prediction_finisher(prediction_finish_many).submit([finished], timeout=settings.PREDICT_TIMEOUT_SECONDS)[0]  # type: ignore[no-any-return]


def _tokens_checked(prediction: Prediction, predictor: Any, rows: list[str]) -> list[int]:
    """Tokens per text; a text longer than the encoder reads is refused (a 400 naming it), not cut, and the
    prediction is deleted with its quota given back: bad input leaves nothing behind."""
    tokens = predictor.token_counts(rows)
    too_long = {str(i): f"{n} tokens; this model reads at most {predictor.max_tokens}"
                for i, n in enumerate(tokens) if n > predictor.max_tokens}
    if too_long:
        with transaction.atomic():
            deleted, _ = Prediction.objects.filter(pk=prediction.pk, status=JobStatus.RUNNING).delete()
            if deleted:
                quota_release(organization_id=prediction.organization_id, rows=prediction.rows)
        raise InvalidInput(gettext('%(count)s input(s) are longer than this model reads (%(max_tokens)s tokens); shorten or split them.') % {"count": len(too_long), "max_tokens": predictor.max_tokens}, details={"param": "input", "inputs": too_long})
    return tokens


def embedding_audit_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the audit log keeps of vectors: a commitment (SHA-256 of the float32 bytes, little-endian) and
    their size, not the numbers (the stored prediction holds them; a receipt proves which they were)."""
    import hashlib

    import numpy as np

    return [{"dimensions": len(o["embedding"]), "tokens": o["tokens"],
             "sha256": hashlib.sha256(np.asarray(o["embedding"], dtype="<f4").tobytes()).hexdigest()}
            for o in outputs]


class _Finished:
    __slots__ = ("compute_ms", "device", "latency_ms", "outputs", "prediction")

    def __init__(self, prediction: Prediction, outputs: list[dict[str, Any]], compute_ms: float, latency_ms: float,
                 device: str) -> None:
        self.prediction, self.outputs, self.device = prediction, outputs, device
        self.compute_ms, self.latency_ms = compute_ms, latency_ms


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def prediction_finish_many(items: list[_Finished]) -> list[PredictionResult]:
    """Stores outputs, appends the receipts and meters usage for a batch, in one transaction."""
    from django.db import close_old_connections

    from audit.log.services import AuditRecord, audit_record_many

    close_old_connections()  # this runs on the finisher's own thread, outside any request
    now = timezone.now()
    with transaction.atomic():
        receipts = audit_record_many([
            AuditRecord(
                action="prediction.completed", actor=prediction_actor(item.prediction),
                organization_id=item.prediction.organization_id, target_type="inference.Prediction",
                target_id=item.prediction.pk, request_id=item.prediction.request_id,
                payload={"model": item.prediction.model_version.model.name,
                         "version": item.prediction.model_version.version,
                         "inputs": item.prediction.inputs["rows"],
                         "outputs": embedding_audit_outputs(item.outputs)
                         if item.prediction.model_version.task == Task.EMBEDDING else item.outputs,
                         "latency_ms": item.latency_ms, "compute_ms": item.compute_ms, "device": item.device,
                         # tried in the playground by an owner or a reviewer before approval
                         **({} if item.prediction.model_version.is_servable else
                            {"approved": False, "version_status": item.prediction.model_version.status})},
                subject=item.prediction.inputs.get("subject") or None,
            )
            for item in items
        ])
        threads = _threads()
        # one worker, one device: the power is read once for the batch
        spent = footprints([item.compute_ms for item in items], device=items[0].device, threads=threads)
        for item, receipt, energy in zip(items, receipts, spent, strict=True):
            p = item.prediction
            p.outputs, p.status, p.compute_ms, p.device = item.outputs, JobStatus.DONE, item.compute_ms, item.device
            p.audit_index, p.audit_leaf_hash, p.finished_at = receipt.index, receipt.leaf_hash, now
            p.energy_wh, p.energy_estimated = energy.energy_wh, energy.estimated
        if len(items) == 1:  # a plain UPDATE, built once: bulk_update's CASE expressions cost ~2 ms more to build
            p = items[0].prediction
            _FINISH.execute([*(Prediction._meta.get_field(name).get_db_prep_save(getattr(p, name), connection)  # type: ignore[union-attr]
                               for name in _FINISH_FIELDS), p.pk])
        else:
            Prediction.objects.bulk_update([item.prediction for item in items], list(_FINISH_FIELDS))
        metered: dict[tuple[int, int | None], list[Any]] = {}
        for item, energy in zip(items, spent, strict=True):
            key = (item.prediction.organization_id, item.prediction.token_id)
            entry = metered.setdefault(key, [0, 0, 0.0, 0.0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += item.prediction.rows
            entry[2] += item.compute_ms
            entry[3] += energy.energy_wh
            entry[4] += energy.estimated_wh
            entry[5] += energy.carbon_g
        for (organization_id, token_id), (requests, rows, compute_ms, wh, estimated, carbon) in metered.items():
            usage_record(organization_id=organization_id, token_id=token_id, rows=rows, compute_ms=compute_ms,
                         requests=requests, energy=Footprint(energy_wh=wh, estimated=estimated > 0, carbon_g=carbon))
    return [prediction_result(item.prediction) for item in items]


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
