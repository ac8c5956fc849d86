"""Background jobs, written once: the status every job has, and claiming, beating, finishing,
failing and requeueing it.

A kind of job is one model (a subclass of `Job` or `WorkerJob`), one service function that runs
it, and one registration (`register(JobKind(...))`, next to that function; the app's `ready()`
imports the module, as Opacus registers its accountants). Its Celery task is declared with
`@job_task("kind name")`: a failure of the task is then stored by `job_fail` (the kind's
settlement, e.g. quota or privacy budget given back, and its audit entry, in one transaction)
before a caller waiting on a reply is told. The sweeper (`jobs_requeue_stale`, on the beat and at
a worker's start) walks the registry: no list of import strings to keep in step.

The life of a job: created PENDING in the service's transaction with its audit entry, the task
sent on commit; `job_claim` turns it RUNNING on one worker (a redelivered task finds it claimed
and does nothing); `job_beat` records progress and says whether it should go on (not cancelled,
not failed meanwhile); the service finishes it DONE in the transaction of its result and its
audit entry (`job_finish`), or the task fails and `job_fail` settles it. A worker that dies leaves
it RUNNING; its heartbeat goes stale, or the worker of the same name starts again, and
`job_requeue_stale` puts it back on a queue (with the kind's `reset` applied).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import models, transaction
from django.dispatch import receiver
from django.utils import timezone

from portal.platform.locks import for_update
from portal.platform.workers import worker_restarted

logger = logging.getLogger("steward.jobs")


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobStatus.PENDING, JobStatus.RUNNING)


class Job(models.Model):
    """What every job a worker runs records: the organisation it belongs to, its status and error, when it was created, started
    and finished, and what requeues it if its worker dies: its heartbeat, and the worker whose
    restart requeues it at once."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # the Celery worker running it: when that worker starts again, the job is requeued at once
    worker = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        abstract = True


class WorkerJob(Job):
    """A job someone created (the jobs of the API and the UI)."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True


def _no_payload(job: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class JobKind:
    """How the framework treats one kind of job.

    name: the kind's name (the task's `job_task` argument, the sweeper's report).
    model: its model; `target_type` names it in the audit log.
    task: the import path of its Celery task (imported when first sent: tasks import services).
    failed_action: the audit action of a failure; `actor(job)` who records it.
    settle(job): what a failed job gives back, in the failure's transaction (quota, budget);
        returns what to add to the audit payload.
    after_failed(job): after that transaction (files to remove).
    public_error: stored instead of the exception's text when the text may echo what the job ran
        (an uploaded model's output); the text is logged for operators.
    stale_after: a RUNNING job whose heartbeat is older is requeued; None: never requeued (a
        request someone waits on; the waiter's timeout settles it).
    reset: fields set when it is requeued (progress starts over); queue: its queue, else the serving pool.
    what: how a failure names it to a waiting caller ("Explanation 12 failed; ...").
    """

    name: str
    model: type[Job]
    target_type: str
    task: str
    failed_action: str
    actor: Callable[[Any], Any]
    what: str
    settle: Callable[[Any], dict[str, Any]] = _no_payload
    after_failed: Callable[[Any], None] | None = None
    public_error: str = ""
    stale_after: timedelta | None = timedelta(minutes=2)
    reset: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None

    def send(self, job_id: int, *, queue: str | None = None, **kwargs: Any) -> None:
        from django.utils.module_loading import import_string

        from portal.platform.workers import serving_queue

        import_string(self.task).apply_async((job_id,), kwargs or None,
                                             queue=queue or self.queue or serving_queue() or "cpu")

    def send_on_commit(self, job_id: int, *, queue: str | None = None, **kwargs: Any) -> None:
        """Sends the task once the transaction that created the job commits (never for a job rolled back)."""
        transaction.on_commit(lambda: self.send(job_id, queue=queue, **kwargs))


_kinds: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Adds a kind to the registry (idempotent for the same kind: modules may be imported twice)."""
    known = _kinds.get(kind.name)
    if known is not None and known.model is not kind.model:
        raise ValueError(f"two kinds of job are named {kind.name!r}")
    _kinds[kind.name] = kind
    return kind


def kinds() -> list[JobKind]:
    return list(_kinds.values())


def kind_named(name: str) -> JobKind:
    return _kinds[name]


@contextlib.contextmanager
def stored_input(name: str, content: bytes) -> Iterator[str]:
    """Stores a job's input (artifact storage) for the block that creates the job, and deletes it
    again if the block fails (a refusal, a rolled-back transaction): nothing of a job that was
    not created stays behind. Yields the stored name."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    stored = default_storage.save(name, ContentFile(content))
    try:
        yield stored
    except BaseException:
        default_storage.delete(stored)
        raise


# --- one job's life -------------------------------------------------------------------------

def job_claim(model: type[Job], job_id: int, *, keep_started: bool = False, only: dict[str, Any] | None = None,
              **fields: Any) -> bool:
    """Turns a PENDING job RUNNING on this worker, once: False when it is not pending any more
    (a redelivered task, a cancelled job). `keep_started` keeps the first start of a job that resumes;
    `only` adds conditions; `fields` are set with it (progress reset, a first stage)."""
    from portal.platform.workers import current_worker

    now = timezone.now()
    claimed = model._default_manager.filter(pk=job_id, status=JobStatus.PENDING, **(only or {})).update(
        status=JobStatus.RUNNING, heartbeat_at=now, worker=current_worker(),
        **({} if keep_started else {"started_at": now}), **fields)
    if claimed == 1 and keep_started:
        model._default_manager.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    return claimed == 1


def job_beat(model: type[Job], job_id: int, *, only: dict[str, Any] | None = None, **progress: Any) -> bool:
    """Records progress and the heartbeat of a RUNNING job; False when it should stop (it is no
    longer running, or matches no more `only`, e.g. cancel_requested=False)."""
    return bool(model._default_manager.filter(pk=job_id, status=JobStatus.RUNNING, **(only or {})).update(
        heartbeat_at=timezone.now(), **progress))


def job_finish(model: type[Job], job_id: int, *, status: str = JobStatus.DONE, **fields: Any) -> bool:
    """Settles a RUNNING job (DONE by default) with its result; call it inside the transaction of
    the result's audit entry. False when it was settled meanwhile (failed by a sweeper): the caller
    then records nothing."""
    return bool(model._default_manager.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields))


def job_fail(kind: JobKind, job_id: int, *, error: str, public: bool = False) -> bool:
    """Stores a pending or running job as FAILED with `error` (or, unless `public` says the error
    is a sentence for the user, the kind's `public_error`), gives back what it held and records
    the failure, in one transaction. False when it was already settled (done, failed or
    cancelled): nothing changes then."""
    with transaction.atomic():
        job = for_update(kind.model._default_manager.filter(pk=job_id)).first()
        if job is None or job.status not in ACTIVE:
            return False
        if kind.public_error and not public:
            logger.error("%s %s failed: %s", kind.name, job_id, error)
            error = kind.public_error
        job.status = JobStatus.FAILED
        job.error = error[:2000]
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        payload = {"error": error[:500], **kind.settle(job)}
        from audit.log.services import audit_record

        audit_record(action=kind.failed_action, actor=kind.actor(job), organization_id=job.organization_id,
                     target_type=kind.target_type, target_id=job_id, payload=payload)
    if kind.after_failed is not None:
        kind.after_failed(job)
    return True


def job_requeue_stale(kind: JobKind, *, stale_after: timedelta | None = None, orphaned_by: str = "") -> int:
    """Puts back on a queue the jobs of `kind` whose worker stopped beating (a crash, a restart).

    A job is RUNNING with a `heartbeat_at` older than `stale_after` (the kind's by default), or,
    with `orphaned_by`, RUNNING on the worker of that name, which has just started and so is not
    running it (its previous run died): such a job need not wait until its heartbeat is stale. It
    becomes PENDING again (with the kind's `reset`), claimed by one conditional UPDATE so that two
    sweepers never requeue it twice, and its task is sent. Returns how many were found.
    """
    if orphaned_by:
        condition: dict[str, Any] = {"status": JobStatus.RUNNING, "worker": orphaned_by}
    else:
        stale = stale_after or kind.stale_after
        if stale is None:
            return 0
        condition = {"status": JobStatus.RUNNING, "heartbeat_at__lt": timezone.now() - stale}
    stuck = list(kind.model._default_manager.filter(**condition).values_list("pk", flat=True))
    for pk in stuck:
        if kind.model._default_manager.filter(pk=pk, **condition).update(status=JobStatus.PENDING, worker="", **kind.reset):
            kind.send(pk)
    return len(stuck)


class SweepsFailed(Exception):
    """One or more kinds' sweeps raised (each is logged; the others ran)."""


def jobs_requeue_stale(*, orphaned_by: str = "") -> dict[str, int]:
    """`job_requeue_stale` for every registered kind that is requeued: the periodic task and a
    starting worker both run this. Returns how many each kind requeued, by its name.

    Raises:
        SweepsFailed: a kind's sweep failed; the ones after it still ran.
    """
    found, failed = {}, []
    for kind in kinds():
        if kind.stale_after is None:
            continue
        try:
            found[kind.name] = job_requeue_stale(kind, orphaned_by=orphaned_by)
        except Exception:
            logger.exception("the sweep of %s failed%s", kind.name, f" (for {orphaned_by})" if orphaned_by else "")
            failed.append(kind.name)
    if failed:
        raise SweepsFailed(", ".join(failed))
    return found


@receiver(worker_restarted)
def _requeue_orphans(sender: Any, hostname: str, **kwargs: Any) -> None:
    """Jobs a worker's previous run left RUNNING (it was killed, or its machine stopped) start
    again as soon as the worker of that name is back, not when their heartbeat is stale (minutes)."""
    try:
        found = jobs_requeue_stale(orphaned_by=hostname)
    except SweepsFailed:  # the worker still serves; the periodic sweep will find them later
        return
    for kind, count in found.items():
        if count:
            logger.warning("%s: %d job(s) this worker left running when it stopped were queued again (%s)",
                           hostname, count, kind)


# --- the tasks ------------------------------------------------------------------------------

class JobTask(Task):  # type: ignore[misc]
    """A job's Celery task: its failure is the framework's. The failure is stored first
    (`job_fail`), and only then is a caller waiting on `reply_to` told, since what the waiter
    reads is the stored failure."""

    job_kind: str = ""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        kind = kind_named(self.job_kind)
        job_fail(kind, args[0], error=f"{type(exc).__name__}: {exc}")
        if kwargs.get("reply_to"):
            from portal.platform.replies import reply_fail

            reply_fail(kwargs["reply_to"], exc, message=f"{kind.what} {args[0]} failed; it is recorded as failed.")


def job_task(kind: str) -> Callable[[Callable[..., Any]], Any]:
    """Declares the Celery task of a kind of job: late acknowledgement (a worker that dies leaves
    it to the broker and the sweeper), no result stored, failures settled by `JobTask`."""
    return shared_task(base=JobTask, job_kind=kind, bind=True, acks_late=True, ignore_result=True)  # type: ignore[no-any-return]
