"""Registering a model from an upload: staged by the web, checked on a worker, then a draft version.

The web process only spools the archive (within its size limit), reads its table of contents
and stages it in the artifact storage; loading the model and running its example happen on a
worker, in a child process with time and memory limits and without the portal's environment
(inference/ml/sandbox.py). A check that passes makes a draft version; one that fails deletes
the staged archive and keeps only the sentence that says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import AuditActor
from inference.exceptions import ArchiveTooLarge, InvalidArchive, WorkerUnavailable
from inference.ml import artifacts, compression
from inference.ml.predictors import ArtifactInfo
from inference.ml.sandbox import Limits, convert_gguf_in_sandbox, inspect_in_sandbox
from inference.ml.schema import InputError
from inference.models import ModelUpload, ModelVersion, Task
from inference.services.registry import card_clean, version_store
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobKind, JobStatus, job_claim, job_fail, register
from portal.platform.replies import Awaited, ReplyTimeout, WorkerFailed, reply_key, reply_wait
from portal.platform.workers import serving_queue

logger = logging.getLogger("steward.inference")


def _spool(upload: BinaryIO, folder: Path) -> tuple[Path, str, int]:
    path, limit, size, digest = folder / "upload", settings.MODEL_MAX_ARCHIVE_BYTES, 0, hashlib.sha256()
    with path.open("wb") as out:
        while block := upload.read(1 << 20):
            size += len(block)
            if size > limit:
                raise ArchiveTooLarge(gettext('The archive is larger than the limit of %(limit)s bytes.') % {"limit": limit})
            digest.update(block)
            out.write(block)
    return path, digest.hexdigest(), size


def model_upload_create(*, actor: Actor, name: str, task: str, archive: BinaryIO, card: dict[str, Any] | None = None,
                        description: str = "", waited_for: bool = True, queue: bool = True) -> Awaited[ModelUpload]:
    """Stages an upload and queues its check. Refuses at once what needs no model loaded: an unknown
    task, a card with unknown fields, an archive too large, not a zip or tar.gz, or unsafe.

    `queue=False` leaves the check to the caller (`model_upload_check`), as the command that builds
    the demo models does: it runs where the worker's code runs, never in the web process.
    """
    actor.require(Cap.MODEL_REGISTER, "register models")
    if task not in Task.values:
        raise InvalidArchive(gettext('Unknown task %(task)r; use one of %(join)s.') % {"task": task, "join": ', '.join(Task.values)})
    card = card_clean(card or {})
    pool = serving_queue() if queue else "cpu"
    if pool is None:
        raise WorkerUnavailable(gettext('No worker is running to check the model; try again shortly.'))
    workdir = Path(tempfile.mkdtemp(prefix="steward-upload-"))
    staged_name = ""
    try:
        path, sha256, size = _spool(archive, workdir)
        suffix = _admitted_format(path, task)
        with path.open("rb") as handle:
            staged_name = default_storage.save(f"uploads/{actor.organization.pk}/{uuid.uuid4().hex}{suffix}",
                                               File(handle))
        with transaction.atomic():
            upload = ModelUpload.objects.create(
                organization=actor.organization, name=name, task=task, card=card, description=description,
                staged_path=staged_name, archive_sha256=sha256, archive_size=size, created_by=actor.user,
                audit_actor=dataclasses.asdict(actor.audit_actor),
            )
            reply_to = reply_key() if waited_for and queue else None
            if queue:
                MODEL_UPLOADS.send_on_commit(upload.pk, queue=pool, reply_to=reply_to)
        return Awaited(upload, reply_to)
    except BaseException:
        if staged_name:
            default_storage.delete(staged_name)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def model_upload_wait(staged: Awaited[ModelUpload], *, timeout: float | None = None) -> ModelUpload:
    """The upload once its check is done or failed, or as it is after `timeout` seconds (still checking)."""
    if staged.reply_to is not None:
        with contextlib.suppress(ReplyTimeout, WorkerFailed):
            reply_wait(staged.reply_to, timeout=settings.MODEL_CHECK_WAIT_SECONDS if timeout is None else timeout)
    staged.stored.refresh_from_db()
    return staged.stored


GGUF_MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == GGUF_MAGIC


def _gguf_for(task: str) -> None:
    if task != Task.GENERATION:
        raise InvalidArchive(gettext('A GGUF file holds a generative model: register it as text-generation, not %(task)s.') % {"task": task})


def _admitted_format(path: Path, task: str) -> str:
    """The staged file's suffix, once what needs no model loaded is checked: an archive's table of
    contents (traversal, links, bombs), or a single GGUF file, which only a generative model can be."""
    if is_gguf(path):
        _gguf_for(task)
        return ".gguf"
    try:
        artifacts.list_members(path, max_unpacked_bytes=settings.MODEL_MAX_UNPACKED_BYTES)
    except artifacts.ArchiveError as exc:
        raise InvalidArchive(gettext('%(upper)s%(value)s.') % {"upper": str(exc)[:1].upper(), "value": str(exc)[1:]}) from None
    with path.open("rb") as handle:
        return ".zip" if handle.read(2) == b"PK" else ".tar.gz"


@dataclasses.dataclass
class Checked:
    """An upload that passed its check: what to store (the upload itself, or the folder a GGUF file
    was converted to, packed), its digest and size, what it is, and where it came from."""

    path: Path
    sha256: str
    size: int
    info: ArtifactInfo
    source: dict[str, Any] | None = None  # a converted upload: its format, digest and size


def check_limits() -> Limits:
    return Limits(seconds=settings.MODEL_CHECK_SECONDS, memory_bytes=settings.MODEL_CHECK_MEMORY_MB * 2**20)


def _checked(archive: Path, task: str, workdir: Path, sha256: str, size: int, *, compressed: bool = False) -> Checked:
    """Unpacks and checks an archive in the sandbox, or converts a GGUF file there and checks the
    folder it gives (stored packed: what is served is what was checked); InvalidArchive with the
    reason, as a sentence."""
    gguf = is_gguf(archive)
    if gguf:
        _gguf_for(task)
    try:
        if gguf:
            # the child writes the converted weights: each file within what an archive may unpack to
            limits = dataclasses.replace(check_limits(), file_bytes=settings.MODEL_MAX_UNPACKED_BYTES)
            info = convert_gguf_in_sandbox(archive, workdir / "model", limits)
            written = sum(f.stat().st_size for f in (workdir / "model").rglob("*") if f.is_file())
            if written > settings.MODEL_MAX_UNPACKED_BYTES:
                raise InputError(gettext('the converted model takes %(written)s bytes, more than the limit of %(MODEL_MAX_UNPACKED_BYTES)s') % {"written": written, "MODEL_MAX_UNPACKED_BYTES": settings.MODEL_MAX_UNPACKED_BYTES})
            packed = workdir / "converted.zip"
            packed.write_bytes(artifacts.pack_directory(workdir / "model"))
            stored_sha256, stored_size = artifacts.sha256_file(packed), packed.stat().st_size
            return Checked(packed, stored_sha256, stored_size, info,
                           source={"format": "gguf", "sha256": sha256, "bytes": size})
        artifacts.extract(archive, workdir / "model", max_unpacked_bytes=settings.MODEL_MAX_UNPACKED_BYTES)
        if compression.is_compressed(workdir / "model") and not compressed:
            # what a compressed version lost is measured by Steward's own compression, never taken on trust
            raise InputError(gettext('the archive holds a compressed model (compression.json); upload the float weights and compress the version in Steward, which measures what compression costs'))
        return Checked(archive, sha256, size, inspect_in_sandbox(task, workdir / "model", check_limits()))
    except (artifacts.ArchiveError, InputError) as exc:
        text = str(exc).rstrip(".")
        raise InvalidArchive(gettext('%(upper)s%(value)s.') % {"upper": text[:1].upper(), "value": text[1:]}) from None


def model_upload_check(*, upload_id: int) -> ModelUpload:
    """The worker's side: checks the staged archive in the sandbox; registers it or refuses it.
    A redelivered task finds the upload claimed and does nothing."""
    claimed = job_claim(ModelUpload, upload_id)
    upload = ModelUpload.objects.select_related("organization", "created_by").get(pk=upload_id)
    if not claimed:
        return upload
    workdir = Path(tempfile.mkdtemp(prefix="steward-check-"))
    try:
        local = workdir / "upload"
        with default_storage.open(upload.staged_path, "rb") as source, local.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        if artifacts.sha256_file(local) != upload.archive_sha256:
            return _refuse(upload, "The staged archive changed after it was uploaded; upload it again.")
        try:
            checked = _checked(local, upload.task, workdir, upload.archive_sha256, upload.archive_size)
        except InvalidArchive as exc:
            return _refuse(upload, exc.message)
        version = version_store(
            organization=upload.organization, user=upload.created_by, audit_actor=AuditActor(**upload.audit_actor),
            name=upload.name, task=upload.task, path=checked.path, sha256=checked.sha256, size=checked.size,
            info=checked.info, card=upload.card, description=upload.description,
            metrics={"converted_from": checked.source} if checked.source else None,
            on_commit=lambda version: _registered(upload, version),
        )
        upload.refresh_from_db()
        logger.info("upload %s registered as %s", upload.pk, version)
        return upload
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _registered(upload: ModelUpload, version: ModelVersion) -> None:
    """In the version's transaction: the upload is done and points at it."""
    ModelUpload.objects.filter(pk=upload.pk).update(
        status=JobStatus.DONE, version=version, finished_at=timezone.now(), staged_path="")
    staged = upload.staged_path
    transaction.on_commit(lambda: default_storage.delete(staged))


def _refuse(upload: ModelUpload, message: str) -> ModelUpload:
    """The check refused the archive: `message` (a sentence for the uploader) is its reason."""
    job_fail(MODEL_UPLOADS, upload.pk, error=message, public=True)
    upload.refresh_from_db()
    return upload


def _upload_settle(upload: ModelUpload) -> dict[str, Any]:
    """A refused or failed upload keeps nothing of the archive, only the reason."""
    ModelUpload.objects.filter(pk=upload.pk).update(staged_path="")
    staged = upload.staged_path
    if staged:
        transaction.on_commit(lambda: default_storage.delete(staged))
    return {"model": upload.name, "task": upload.task, "sha256": upload.archive_sha256, "reason": upload.error}


MODEL_UPLOADS = register(JobKind(
    name="model upload", model=ModelUpload, target_type="inference.ModelUpload",
    task="inference.tasks.model_upload_check_task", failed_action="model.upload_refused",
    actor=lambda upload: AuditActor(**upload.audit_actor), what="The check of model upload", settle=_upload_settle,
    # the task's own failure (storage, database) may carry what the uploaded model printed: never shown
    public_error="The check could not be completed because of an internal error; upload the archive again.",
    stale_after=timedelta(minutes=5),
))


def model_version_register(*, actor: Actor, name: str, task: str, archive: BinaryIO,
                           card: dict[str, Any] | None = None, description: str = "",
                           metrics: dict[str, Any] | None = None, privacy: dict[str, Any] | None = None,
                           compressed: bool = False) -> ModelVersion:
    """Checks an archive here, at once, in the same sandbox, and stores it as a draft version: for the
    models Steward builds itself (the demo command, a fine-tuning run on a worker). What users upload
    goes through `model_upload_create`, whose check runs on a worker.

    Raises InvalidArchive (400) or ArchiveTooLarge (413) with the reason; nothing is stored then.
    """
    actor.require(Cap.MODEL_REGISTER, "register models")
    if task not in Task.values:
        raise InvalidArchive(gettext('Unknown task %(task)r; use one of %(join)s.') % {"task": task, "join": ', '.join(Task.values)})
    card = card_clean(card or {})
    workdir = Path(tempfile.mkdtemp(prefix="steward-register-"))
    try:
        path, sha256, size = _spool(archive, workdir)
        checked = _checked(path, task, workdir, sha256, size, compressed=compressed)
        if checked.source:
            metrics = {**(metrics or {}), "converted_from": checked.source}
        return version_store(
            organization=actor.organization, user=actor.user, audit_actor=actor.audit_actor, name=name, task=task,
            path=checked.path, sha256=checked.sha256, size=checked.size, info=checked.info, card=card,
            description=description, metrics=metrics, privacy=privacy,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
