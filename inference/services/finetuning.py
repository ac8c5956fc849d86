"""Private fine-tuning: training datasets under a privacy budget, the ledger that guards it, the jobs.

The ledger composes every run on a dataset under Rényi DP (see inference.ml.private): a run holds
its whole plan against the budget while it may still spend it ("reserved"), and what it actually
spent once it ends ("settled"). Reservations are taken under a lock on the dataset's row, so two
submissions at once cannot both fit in what only one fits in. A cancelled or failed run settles at
the steps it took; a run that a new worker resumes from its checkpoint spends its plan once.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from audit.log.services import AuditActor, audit_record
from inference.exceptions import (
    BudgetExceeded,
    InvalidDataset,
    JobNotCancellable,
    NotTrainable,
    WorkerUnavailable,
)
from inference.ml import private
from inference.models import (
    FineTuneJob,
    JobStatus,
    LedgerState,
    ModelVersion,
    PrivacyLedgerEntry,
    RegisteredModel,
    Task,
    TrainingDataset,
)
from inference.services.jobs import upload_text
from portal.accounts.actor import Actor, actor_for_membership
from portal.accounts.roles import Cap
from portal.jobs import JobKind, job_beat, job_claim, job_finish, register, stored_input
from portal.platform import csvsafe
from portal.platform.workers import serving_queue

WORKER = AuditActor.system("training worker")
EPSILON_RANGE = (0.01, 50.0)  # beyond 50, "private" says nothing a reader could rely on
DELTA_MAX = 1e-3
MIN_ROWS = 20
HOLDOUT = 0.1
LIMITS = {"epochs": (1, 50), "batch_size": (1, 4096), "learning_rate": (1e-7, 1.0), "max_grad_norm": (1e-3, 100.0)}
DEFAULTS = {"epochs": 3, "batch_size": 32, "learning_rate": 5e-4, "max_grad_norm": 1.0, "lr_schedule": "constant"}


# ---------------------------------------------------------------- datasets

def _budget_check(epsilon: float, delta: float, rows: int) -> None:
    if not EPSILON_RANGE[0] <= epsilon <= EPSILON_RANGE[1]:
        raise InvalidDataset(f"The epsilon cap must be between {EPSILON_RANGE[0]} and {EPSILON_RANGE[1]}; "
                             f"got {epsilon}.")
    if not 0 < delta <= DELTA_MAX:
        raise InvalidDataset(f"The delta cap must be above 0 and at most {DELTA_MAX}; got {delta}.")
    if rows and delta >= 1 / rows:
        raise InvalidDataset(f"The delta cap must be below 1/rows = {1 / rows:.2g} (here {rows} rows): a larger delta "
                             "allows a record to be disclosed outright.")


def _read_rows(upload: BinaryIO, labels: list[str]) -> tuple[list[tuple[str, int]], str]:
    """(text, label index) rows of a `text,label` CSV, and the file's SHA-256."""
    text, digest = upload_text(upload, max_bytes=settings.FINETUNE_MAX_BYTES, error=InvalidDataset)
    try:
        fieldnames, records = csvsafe.read_dicts(text)
    except csvsafe.Unreadable as exc:
        raise InvalidDataset(str(exc)) from None
    missing = {"text", "label"} - set(fieldnames)
    if missing:
        raise InvalidDataset(f"The CSV file needs the columns text and label; it lacks {', '.join(sorted(missing))}.")
    rows = []
    for line, record in enumerate(records, start=2):
        value, label = (record.get("text") or "").strip(), (record.get("label") or "").strip()
        if not value:
            raise InvalidDataset(f"Line {line}: the text is empty.")
        if label in labels:
            rows.append((value, labels.index(label)))
        elif label.isdigit() and int(label) < len(labels):
            rows.append((value, int(label)))
        else:
            raise InvalidDataset(f"Line {line}: the label is not one of the model's labels ({', '.join(labels)}) "
                                 "nor their index.")
    if len(rows) < MIN_ROWS:
        raise InvalidDataset(f"A training set needs at least {MIN_ROWS} rows; this one has {len(rows)}.")
    if len(rows) > settings.FINETUNE_MAX_ROWS:
        raise InvalidDataset(f"A training set holds at most {settings.FINETUNE_MAX_ROWS} rows; this one has {len(rows)}.")
    return rows, digest


def dataset_create(*, actor: Actor, model: RegisteredModel, upload: BinaryIO, name: str, epsilon_cap: float,
                   delta_cap: float) -> TrainingDataset:
    """Checks the rows against the model's labels and the budget, stores them; nothing is kept on a refusal."""
    actor.require(Cap.MODEL_REGISTER, "upload training data")
    latest = model.versions.order_by("-version").first()
    if latest is None or latest.task != Task.TEXT:
        raise NotTrainable(f"{model.name} is not a text classifier; private fine-tuning trains text models "
                           "(Hugging Face sequence classifiers).")
    rows, digest = _read_rows(upload, list(latest.labels))
    holdout = max(1, round(len(rows) * HOLDOUT))
    _budget_check(epsilon_cap, delta_cap, len(rows) - holdout)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)  # noqa: S311  (a fixed split, not a secret)
    held = set(order[:holdout])
    content = {
        "labels": list(latest.labels),
        "train": [rows[i] for i in range(len(rows)) if i not in held],
        "holdout": [rows[i] for i in sorted(held)],
    }
    with stored_input(f"training/{actor.organization.pk}/{uuid.uuid4().hex}.json", json.dumps(content).encode()) as stored, transaction.atomic():
        dataset = TrainingDataset.objects.create(
            organization=actor.organization, model=model, name=(name or "training.csv")[:200], path=stored,
            sha256=digest, train_rows=len(content["train"]), holdout_rows=holdout, epsilon_cap=epsilon_cap,
            delta_cap=delta_cap, created_by=actor.user,
        )
        audit_record(  # the rows themselves are never logged
            action="training_dataset.created", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.TrainingDataset", target_id=dataset.pk,
            payload={"model": model.name, "name": dataset.name, "sha256": digest, "rows": len(rows),
                     "holdout_rows": holdout, "epsilon_cap": epsilon_cap, "delta_cap": delta_cap},
        )
    return dataset


def ledger_runs(dataset: TrainingDataset, *, exclude_job: int | None = None) -> list[tuple[float, float, int]]:
    entries = dataset.ledger.exclude(job_id=exclude_job) if exclude_job else dataset.ledger.all()
    return [(e.noise_multiplier, e.sample_rate, e.steps_counted) for e in entries]


def budget_summary(dataset: TrainingDataset) -> dict[str, Any]:
    """Spent (settled runs), committed (settled and reserved), and the cap, all at the dataset's delta."""
    entries = list(dataset.ledger.all())
    settled = [(e.noise_multiplier, e.sample_rate, e.steps_spent) for e in entries if e.state == LedgerState.SETTLED]
    committed = [(e.noise_multiplier, e.sample_rate, e.steps_counted) for e in entries]
    return {
        "epsilon_cap": dataset.epsilon_cap, "delta": dataset.delta_cap, "accountant": "RDP (Opacus), composed over runs",
        "epsilon_spent": private.composed_epsilon(settled, dataset.delta_cap),
        "epsilon_committed": private.composed_epsilon(committed, dataset.delta_cap),
        "runs": len(entries), "reserved_runs": sum(e.state == LedgerState.RESERVED for e in entries),
    }


def _largest_fitting(runs: list[tuple[float, float, int]], dataset: TrainingDataset, plan: private.Plan) -> float:
    """The largest epsilon one more run with this sampling and length could still have (0 if none).

    The least noise that keeps the composed total within the cap, by bisection on the noise multiplier,
    stated as that run's own epsilon.
    """
    held = private.rdp_curve(runs)  # computed once; each trial adds one run's curve

    def total(sigma: float) -> float:
        return private.epsilon_of(held + private.rdp_curve([(sigma, plan.sample_rate, plan.steps)]), dataset.delta_cap)

    low, high = 0.3, 64.0
    if total(high) > dataset.epsilon_cap:
        return 0.0
    for _ in range(14):
        middle = (low * high) ** 0.5  # bisection on a log scale
        low, high = (low, middle) if total(middle) <= dataset.epsilon_cap else (middle, high)
    return private.composed_epsilon([(high, plan.sample_rate, plan.steps)], dataset.delta_cap)


def privacy_reserve(*, dataset: TrainingDataset, job: FineTuneJob, plan: private.Plan) -> PrivacyLedgerEntry:
    """Reserves a plan against the dataset's cap (call inside a transaction); BudgetExceeded if it does not fit."""
    locked = TrainingDataset.objects.select_for_update().get(pk=dataset.pk)  # one reservation at a time
    runs = ledger_runs(locked)
    total = private.composed_epsilon([*runs, (plan.noise_multiplier, plan.sample_rate, plan.steps)], locked.delta_cap)
    if total > locked.epsilon_cap + 1e-9:
        before = private.composed_epsilon(runs, locked.delta_cap)
        fits = _largest_fitting(runs, locked, plan)
        raise BudgetExceeded(
            f"This run would exceed the privacy budget of {locked.name}: its cap is epsilon {locked.epsilon_cap:g} "
            f"at delta {locked.delta_cap:g}; {len(runs)} earlier or running run(s) hold epsilon {before:.3f}, and this "
            f"one (epsilon {plan.target_epsilon:g} alone) would bring the total to {total:.3f} under RDP composition. "
            + (f"With these settings, a target of at most epsilon {fits:.2f} still fits." if fits >= EPSILON_RANGE[0]
               else "No further run fits in what is left."),
            details={"epsilon_cap": locked.epsilon_cap, "epsilon_committed": before, "epsilon_after": total,
                     "largest_fitting_target": round(fits, 4)},
        )
    return PrivacyLedgerEntry.objects.create(
        dataset=locked, job=job, noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate,
        steps_reserved=plan.steps, epsilon_planned=plan.target_epsilon,
    )


def privacy_settle(*, job: FineTuneJob, steps_spent: int) -> None:
    """Ends a reservation at what the run spent (inside a transaction); the rest of its plan is released."""
    entry = PrivacyLedgerEntry.objects.select_for_update().get(job=job)
    if entry.state == LedgerState.SETTLED:
        return
    entry.state, entry.steps_spent = LedgerState.SETTLED, min(steps_spent, entry.steps_reserved)
    entry.settled_at = timezone.now()
    entry.save(update_fields=["state", "steps_spent", "settled_at"])
    dataset = entry.dataset
    audit_record(
        action="privacy.settled", actor=WORKER, organization_id=dataset.organization_id,
        target_type="inference.TrainingDataset", target_id=dataset.pk,
        payload={"job": job.pk, "steps_spent": entry.steps_spent, "steps_reserved": entry.steps_reserved,
                 "epsilon_run": private.composed_epsilon([(entry.noise_multiplier, entry.sample_rate,
                                                           entry.steps_spent)], dataset.delta_cap),
                 "epsilon_spent_total": budget_summary(dataset)["epsilon_spent"]},
    )


# ---------------------------------------------------------------- jobs

def _trainability_check(version: ModelVersion) -> None:
    """Asks Opacus's validator about the base model's layers before anything runs (its config, not its weights)."""
    if version.task != Task.TEXT:
        raise NotTrainable(f"{version} is a {version.task} model (TorchScript); Opacus needs the model's own "
                           "layers to compute per-sample gradients, so only Hugging Face text classifiers are trained.")
    from inference.runtime import artifact_folder

    try:
        private.check_folder(artifact_folder(version), secure_mode=settings.DP_SECURE_MODE)
    except private.NotTrainable as exc:
        raise NotTrainable(str(exc)) from None


def finetune_create(*, actor: Actor, dataset: TrainingDataset, base_version: ModelVersion, target_epsilon: float,
                    target_delta: float | None = None, **params: Any) -> FineTuneJob:
    """Plans the run, reserves its budget, queues it; a refusal (4xx) leaves nothing behind."""
    actor.require(Cap.MODEL_REGISTER, "fine-tune models")
    if base_version.model_id != dataset.model_id:
        raise InvalidDataset(f"{dataset.name} was uploaded for {dataset.model.name}, not {base_version.model.name}.")
    chosen = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    for key, (low, high) in LIMITS.items():
        if not low <= chosen[key] <= high:
            raise InvalidDataset(f"{key} must be between {low:g} and {high:g}; got {chosen[key]}.")
    if chosen["lr_schedule"] not in private.SCHEDULES:
        raise InvalidDataset(f"lr_schedule must be one of {', '.join(private.SCHEDULES)}; got {chosen['lr_schedule']!r}.")
    chosen["batch_size"] = int(chosen["batch_size"])
    chosen["epochs"] = int(chosen["epochs"])
    if chosen["batch_size"] > dataset.train_rows:
        raise InvalidDataset(f"batch_size must not exceed the {dataset.train_rows} training rows.")
    delta = dataset.delta_cap if target_delta is None else target_delta
    if not EPSILON_RANGE[0] <= target_epsilon <= dataset.epsilon_cap:
        raise InvalidDataset(f"target_epsilon must be between {EPSILON_RANGE[0]} and the dataset's cap "
                             f"{dataset.epsilon_cap:g}; got {target_epsilon}.")
    if not 0 < delta <= dataset.delta_cap:
        raise InvalidDataset(f"target_delta must be above 0 and at most the dataset's {dataset.delta_cap:g}; got {delta}.")
    _trainability_check(base_version)
    plan = private.plan_run(target_epsilon=target_epsilon, target_delta=delta, rows=dataset.train_rows, **chosen)
    queue = serving_queue()
    if queue is None:
        raise WorkerUnavailable("No worker is running; the fine-tuning job was not created.")
    with transaction.atomic():
        job = FineTuneJob.objects.create(organization=actor.organization, dataset=dataset, base_version=base_version,
                                         plan=plan.as_dict(), created_by=actor.user)
        entry = privacy_reserve(dataset=dataset, job=job, plan=plan)
        audit_record(
            action="finetune.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.FineTuneJob", target_id=job.pk,
            payload={"model": base_version.model.name, "base_version": base_version.version, "dataset": dataset.pk,
                     "dataset_sha256": dataset.sha256, "plan": plan.as_dict(), "ledger_entry": entry.pk},
        )
        FINETUNES.send_on_commit(job.pk, queue=queue)
    return job


def finetune_cancel(*, actor: Actor, job: FineTuneJob) -> FineTuneJob:
    actor.require(Cap.MODEL_REGISTER, "cancel fine-tuning")
    with transaction.atomic():
        locked = FineTuneJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in (JobStatus.PENDING, JobStatus.RUNNING):
            raise JobNotCancellable(f"Job {job.pk} is {locked.status}; only a pending or running job can be cancelled.")
        locked.cancel_requested = True
        if locked.status == JobStatus.PENDING:  # never started: nothing spent
            locked.status, locked.finished_at = JobStatus.CANCELLED, timezone.now()
            privacy_settle(job=locked, steps_spent=0)
        locked.save(update_fields=["cancel_requested", "status", "finished_at"])
        audit_record(action="finetune.cancel_requested", actor=actor.audit_actor, organization_id=job.organization_id,
                     target_type="inference.FineTuneJob", target_id=job.pk, payload={"status": locked.status})
    return locked


class _Hooks:
    """The training loop's callbacks: progress and heartbeat, cancellation, checkpoints to the artifact storage."""

    def __init__(self, job: FineTuneJob) -> None:
        self.job = job
        self.path = job.checkpoint_path or f"training/{job.organization_id}/job-{job.pk}-checkpoint.pt"

    def progress(self, p: private.Progress) -> None:
        job_beat(FineTuneJob, self.job.pk, steps_done=p.step, epoch=p.epoch, loss=p.loss, epsilon_spent=p.epsilon)

    def should_stop(self) -> bool:
        return FineTuneJob.objects.filter(pk=self.job.pk, cancel_requested=True).exists()

    def checkpoint(self, state: private.Checkpoint) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(state.__dict__, buffer)
        if default_storage.exists(self.path):
            default_storage.delete(self.path)
        saved = default_storage.save(self.path, ContentFile(buffer.getvalue()))
        job_beat(FineTuneJob, self.job.pk, checkpoint_path=saved)

    def resume(self) -> private.Checkpoint | None:
        if not self.job.checkpoint_path or not default_storage.exists(self.job.checkpoint_path):
            return None
        import torch

        with default_storage.open(self.job.checkpoint_path, "rb") as handle:
            state = torch.load(io.BytesIO(handle.read()), weights_only=False)  # our own file, written above
        return private.Checkpoint(**state)

    def discard(self) -> None:
        if self.job.checkpoint_path and default_storage.exists(self.job.checkpoint_path):
            default_storage.delete(self.job.checkpoint_path)


def finetune_run(*, job_id: int) -> None:
    """Trains (resuming from a checkpoint if a worker died), registers the result as a draft version."""
    if not job_claim(FineTuneJob, job_id, keep_started=True, only={"cancel_requested": False}):
        return
    job = FineTuneJob.objects.select_related("dataset", "base_version__model", "created_by", "organization").get(pk=job_id)
    plan = private.Plan(**job.plan)
    with default_storage.open(job.dataset.path, "rb") as handle:
        content = json.loads(handle.read())
    from inference.ml.device import best_device
    from inference.runtime import artifact_folder

    device = best_device()
    hooks = _Hooks(job)
    resume = hooks.resume()
    tokenizer, model = private.load_text_model(artifact_folder(job.base_version))
    texts, labels = [r[0] for r in content["train"]], [r[1] for r in content["train"]]
    held_texts, held_labels = [r[0] for r in content["holdout"]], [r[1] for r in content["holdout"]]
    base_accuracy = private.accuracy(model, tokenizer, held_texts, held_labels, device=device)
    outcome = private.train_text(
        model, tokenizer, texts, labels, plan, device=device, secure_mode=settings.DP_SECURE_MODE, seed=job.pk,
        resume=resume, checkpoint=hooks.checkpoint, checkpoint_every=settings.FINETUNE_CHECKPOINT_SECONDS,
        progress=hooks.progress, should_stop=hooks.should_stop,
    )
    if outcome.stopped:
        with transaction.atomic():
            if not job_finish(FineTuneJob, job_id, status=JobStatus.CANCELLED, steps_done=outcome.steps,
                              epsilon_spent=outcome.epsilon, device=device):
                return  # failed meanwhile: settled there
            privacy_settle(job=job, steps_spent=outcome.steps)
            audit_record(action="finetune.cancelled", actor=WORKER, organization_id=job.organization_id,
                         target_type="inference.FineTuneJob", target_id=job_id,
                         payload={"steps": outcome.steps, "epsilon_spent": outcome.epsilon})
        hooks.discard()
        return
    accuracy = private.accuracy(model, tokenizer, held_texts, held_labels, device=device)
    _register_result(job=job, plan=plan, outcome=outcome, model=model, tokenizer=tokenizer, device=device,
                     accuracy=accuracy, base_accuracy=base_accuracy)
    hooks.discard()


def _register_result(*, job: FineTuneJob, plan: private.Plan, outcome: private.Outcome, model: Any, tokenizer: Any,
                     device: str, accuracy: float, base_accuracy: float) -> None:
    from inference.ml import artifacts
    from inference.services.uploads import model_version_register

    dataset, base = job.dataset, job.base_version
    guarantee = {
        "epsilon": round(outcome.epsilon, 6), "delta": plan.target_delta, "accountant": "RDP (Opacus RDPAccountant)",
        "mechanism": f"DP-SGD, Poisson sampling, flat clipping: {private.CLIPPING.get(outcome.clipping, outcome.clipping)}", "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate, "steps": outcome.steps, "epochs": plan.epochs, "batch_size": plan.batch_size,
        "max_grad_norm": plan.max_grad_norm, "learning_rate": plan.learning_rate, "lr_schedule": plan.lr_schedule,
        "dataset": dataset.name,
        "dataset_sha256": dataset.sha256, "training_rows": dataset.train_rows, "base_version": base.version,
        "holdout_rows": dataset.holdout_rows, "holdout_accuracy": round(accuracy, 4),
        "base_holdout_accuracy": round(base_accuracy, 4), "secure_mode": settings.DP_SECURE_MODE, "job": job.pk,
        "unit": "one record (example-level privacy)",
    }
    card = {**base.card,
            "training_data": f"Fine-tuned from v{base.version} with differential privacy (epsilon {outcome.epsilon:.2f}, "
            f"delta {plan.target_delta:g}) on {dataset.name} ({dataset.train_rows} rows, sha256 {dataset.sha256[:16]}…). "
            + (base.card.get("training_data") or ""),
            "metrics": f"Accuracy on {dataset.holdout_rows} held-out rows: {accuracy:.4f} (base v{base.version}: "
            f"{base_accuracy:.4f}). The held-out rows are never trained on; this figure is not covered by the DP "
            "guarantee."}
    folder = Path(tempfile.mkdtemp(prefix="steward-finetune-"))
    try:
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        membership = job.created_by.memberships.get(organization=job.organization)
        actor = actor_for_membership(job.created_by, job.organization, membership.role)
        with transaction.atomic():
            version = model_version_register(
                actor=actor, name=base.model.name, task=base.task, archive=io.BytesIO(artifacts.pack_directory(folder)),
                card=card, description=base.model.description,
                metrics={"holdout_accuracy": round(accuracy, 4), "base_holdout_accuracy": round(base_accuracy, 4)},
                privacy=guarantee,
            )
            if not job_finish(FineTuneJob, job.pk, result_version=version, steps_done=outcome.steps,
                              epsilon_spent=outcome.epsilon, device=device,
                              result={"accuracy": accuracy, "base_accuracy": base_accuracy,
                                      "seconds": outcome.seconds, "final_loss": outcome.final_loss}):
                # failed or requeued meanwhile: the version registered above is rolled back with this
                raise RuntimeError(f"fine-tuning job {job.pk} stopped running while it finished")
            privacy_settle(job=job, steps_spent=outcome.steps)
            audit_record(action="finetune.completed", actor=WORKER, organization_id=job.organization_id,
                         target_type="inference.FineTuneJob", target_id=job.pk,
                         payload={"version": version.version, "guarantee": guarantee})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _finetune_settle(job: FineTuneJob) -> dict[str, Any]:
    """A failed run keeps only what it spent of the privacy budget."""
    privacy_settle(job=job, steps_spent=job.steps_done)
    return {"steps": job.steps_done}


FINETUNES = register(JobKind(
    name="fine-tuning", model=FineTuneJob, target_type="inference.FineTuneJob",
    task="inference.tasks.finetune_run_task", failed_action="finetune.failed", actor=lambda job: WORKER,
    what="Fine-tuning job", settle=_finetune_settle, after_failed=lambda job: _Hooks(job).discard(),
    stale_after=timedelta(minutes=3),  # resumes from its last checkpoint
))


def job_response(job: FineTuneJob) -> dict[str, Any]:
    plan = job.plan
    return {
        "id": job.pk, "status": job.status, "model": job.base_version.model.name, "base_version": job.base_version.version,
        "dataset": job.dataset_id, "plan": plan, "steps_done": job.steps_done, "steps_total": plan["steps"],
        "epoch": job.epoch, "loss": job.loss, "epsilon_spent": job.epsilon_spent,
        "cancel_requested": job.cancel_requested, "result": job.result, "error": job.error, "device": job.device,
        "result_version": job.result_version.version if job.result_version else None,
        "created_at": job.created_at.isoformat(), "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def dataset_response(dataset: TrainingDataset) -> dict[str, Any]:
    return {
        "id": dataset.pk, "model": dataset.model.name, "name": dataset.name, "sha256": dataset.sha256,
        "train_rows": dataset.train_rows, "holdout_rows": dataset.holdout_rows, "epsilon_cap": dataset.epsilon_cap,
        "delta_cap": dataset.delta_cap, "created_by": dataset.created_by.username,
        "created_at": dataset.created_at.isoformat(), "budget": budget_summary(dataset),
        "ledger": [{"job": e.job_id, "state": e.state, "noise_multiplier": e.noise_multiplier,
                    "sample_rate": e.sample_rate, "steps_reserved": e.steps_reserved, "steps_spent": e.steps_spent,
                    "epsilon_planned": e.epsilon_planned, "created_at": e.created_at.isoformat(),
                    "settled_at": e.settled_at.isoformat() if e.settled_at else None} for e in dataset.ledger.all()],
    }
