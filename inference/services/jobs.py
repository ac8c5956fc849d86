"""Batch jobs: a CSV or JSON-lines upload predicted row by row on the workers, with progress."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.exceptions import InvalidInput, JobNotCancellable, classifier_required
from inference.ml.schema import InputError, rows_from_records, validate_inputs
from inference.models import BatchJob, ModelVersion
from inference.services.usage import quota_release, quota_reserve, usage_record
from portal.accounts.actor import Actor
from portal.jobs import JobKind, JobStatus, job_beat, job_claim, job_finish, register, stored_input
from portal.platform import csvsafe
from portal.platform.exceptions import PortalError
from portal.platform.locks import for_update
from portal.platform.workers import serving_queue

logger = logging.getLogger("steward.inference")
CHUNK = 64


def upload_text(upload: BinaryIO, *, max_bytes: int, error: type[PortalError] = InvalidInput) -> tuple[str, str]:
    """An uploaded file read once, within `max_bytes`, as UTF-8 text; with its SHA-256."""
    raw = upload.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise error(gettext('The file is larger than the limit of %(max_bytes)s bytes.') % {"max_bytes": max_bytes})
    try:
        return raw.decode("utf-8-sig"), hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError:
        raise error(gettext('The file is not UTF-8 text.')) from None


def rows_parse(upload: BinaryIO, name: str, version: ModelVersion) -> tuple[list[Any], str, str]:
    """The rows of a CSV or JSON-lines upload for `version` (not yet validated); the format; the file's SHA-256."""
    text, digest = upload_text(upload, max_bytes=settings.JOB_MAX_BYTES)
    fmt = "jsonl" if name.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"
    rows: list[Any] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InvalidInput(gettext('Line %(number)s is not JSON: %(msg)s.') % {"number": number, "msg": exc.msg}) from None
    else:
        try:
            fieldnames, records = csvsafe.read_dicts(text)
        except csvsafe.Unreadable as exc:
            raise InvalidInput(str(exc)) from None
        if not fieldnames:
            raise InvalidInput(gettext('The CSV file has no header row.'))
        if version.task == "text-classification":
            if "text" not in fieldnames:
                raise InvalidInput(gettext("The CSV file needs a 'text' column."))
            rows = [{"text": r["text"]} for r in records]
        else:
            missing = sorted({f["name"] for f in version.input_schema["features"]} - set(fieldnames))
            if missing:
                raise InvalidInput(gettext('The CSV file lacks the columns %(join)s.') % {"join": ', '.join(missing)})
            try:
                rows = rows_from_records(version.input_schema, records)
            except InputError as exc:
                raise InvalidInput(str(exc)) from None
    if not rows:
        raise InvalidInput(gettext('The file holds no rows.'))
    if len(rows) > settings.JOB_MAX_ROWS:
        raise InvalidInput(gettext('A job holds at most %(JOB_MAX_ROWS)s rows; this file has %(len)s.') % {"JOB_MAX_ROWS": settings.JOB_MAX_ROWS, "len": len(rows)})
    return rows, fmt, digest


def rows_validate(version: ModelVersion, rows: list[Any]) -> list[Any]:
    """The rows checked against the version's input schema; the first ten rows with errors said on failure."""
    try:
        return validate_inputs(version.task, version.input_schema, rows)
    except InputError as exc:
        first = dict(list(exc.errors.items())[:10])
        raise InvalidInput(gettext('%(exc)s (first rows with errors shown).') % {"exc": exc}, details={"rows": first}) from None


def batch_job_create(*, actor: Actor, version: ModelVersion, upload: BinaryIO, name: str) -> BatchJob:
    """Checks every row of the upload, reserves quota, stores the rows and queues the job."""
    classifier_required(version, "Batch jobs")
    rows, fmt, _ = rows_parse(upload, name, version)
    clean = rows_validate(version, rows)
    if serving_queue() is None:
        from inference.exceptions import WorkerUnavailable

        raise WorkerUnavailable(gettext('No inference worker is running; the job was not created.'))
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in clean).encode()
    with stored_input(f"jobs/{actor.organization.pk}/input.jsonl", body) as stored, transaction.atomic():
        quota_reserve(organization=actor.organization, rows=len(clean))
        job = BatchJob.objects.create(
            organization=actor.organization, model_version=version, created_by=actor.user,
            token=actor.token, input_name=name[:200], input_path=stored, input_format=fmt,
            rows_total=len(clean),
        )
        audit_record(
            action="job.created", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.BatchJob", target_id=job.pk,
            payload={"model": version.model.name, "version": version.version, "rows": len(clean),
                     "file": name[:200]},
        )
        BATCH_JOBS.send_on_commit(job.pk)
    return job


def batch_job_run(*, job_id: int) -> None:
    """Runs a job in chunks through the model's batcher; checks for cancellation between chunks."""
    if not job_claim(BatchJob, job_id, rows_done=0):
        return  # redelivered, cancelled or done
    job = BatchJob.objects.select_related("model_version__model", "created_by", "token").get(pk=job_id)
    from inference.ml.predictors import predictions_from_proba
    from inference.runtime import loaded_model

    loaded = loaded_model(job.model_version)
    with default_storage.open(job.input_path, "rb") as handle:
        rows = [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]
    labels = loaded.predictor.labels
    out = io.StringIO()
    writer = csvsafe.writer(out)  # the uploaded cells come back: none may run in a spreadsheet
    input_columns = ["text"] if job.model_version.task == "text-classification" else list(rows[0])
    writer.writerow(["row", *input_columns, "label", *[f"score_{label}" for label in labels]])
    compute_ms = 0.0  # metered: the chunks' share of the passes that ran them, not the waits between
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        proba, seconds = loaded.batcher.submit_timed(chunk)
        compute_ms += seconds * 1000
        for offset, (row, prediction) in enumerate(zip(chunk, predictions_from_proba(labels, proba), strict=True)):
            values = [row] if isinstance(row, str) else [row[c] for c in input_columns]
            writer.writerow([start + offset, *values, prediction.label, *[prediction.scores[x] for x in labels]])
        done = start + len(chunk)
        if not job_beat(BatchJob, job_id, only={"cancel_requested": False}, rows_done=done):
            _job_finish_cancelled(job_id=job_id, rows_done=start)
            return
    result = default_storage.save(f"jobs/{job.organization_id}/result-{job_id}.csv", ContentFile(out.getvalue().encode()))
    with transaction.atomic():
        if not job_finish(BatchJob, job_id, result_path=result, rows_done=len(rows)):
            default_storage.delete(result)  # failed or cancelled meanwhile: settled there
            return
        usage_record(organization_id=job.organization_id, token_id=job.token_id, rows=len(rows), compute_ms=compute_ms)
        audit_record(
            action="job.completed", actor=AuditActor.system("inference worker"), organization_id=job.organization_id,
            target_type="inference.BatchJob", target_id=job_id,
            payload={"rows": len(rows), "model": job.model_version.model.name, "version": job.model_version.version},
        )


def _job_finish_cancelled(*, job_id: int, rows_done: int) -> None:
    with transaction.atomic():
        job = for_update(BatchJob.objects.all()).get(pk=job_id)
        if job.status in (JobStatus.DONE, JobStatus.FAILED):
            return
        job.status = JobStatus.CANCELLED
        job.rows_done = rows_done
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "rows_done", "finished_at"])
        quota_release(organization_id=job.organization_id, rows=job.rows_total - rows_done)
        audit_record(
            action="job.cancelled", actor=AuditActor.system("inference worker"), organization_id=job.organization_id,
            target_type="inference.BatchJob", target_id=job_id, payload={"rows_done": rows_done},
        )


@transaction.atomic
def batch_job_cancel(*, actor: Actor, job: BatchJob) -> BatchJob:
    job = for_update(BatchJob.objects.all()).get(pk=job.pk)
    if job.status not in (JobStatus.PENDING, JobStatus.RUNNING):
        raise JobNotCancellable(gettext('The job is %(status)s; only a pending or running job can be cancelled.') % {"status": job.status})
    job.cancel_requested = True
    job.save(update_fields=["cancel_requested"])
    audit_record(
        action="job.cancel_requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
        target_type="inference.BatchJob", target_id=job.pk, payload={"status": job.status},
    )
    if job.status == JobStatus.PENDING:
        BatchJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)  # let the finisher settle it
        _job_finish_cancelled(job_id=job.pk, rows_done=0)
    job.refresh_from_db()
    return job


def _batch_job_settle(job: BatchJob) -> dict[str, Any]:
    """A failed job gives back the quota of the rows it did not predict."""
    quota_release(organization_id=job.organization_id, rows=job.rows_total - job.rows_done)
    return {}


BATCH_JOBS = register(JobKind(
    name="batch job", model=BatchJob, target_type="inference.BatchJob", task="inference.tasks.batch_job_run_task",
    failed_action="job.failed", actor=lambda job: AuditActor.system("inference worker"), what="Batch job",
    settle=_batch_job_settle, reset={"rows_done": 0},
))
