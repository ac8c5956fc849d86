"""Private fine-tuning runs: a DP-SGD run of a base version on a training dataset, under its
budget (inference/services/training_datasets.py), with progress, checkpoints and resume; its result
is a new draft version whose card states the guarantee."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.exceptions import (
    InvalidDataset,
    JobNotCancellable,
    NotTrainable,
    WorkerUnavailable,
)
from inference.ml import dp_accounting, private, private_lm
from inference.models import (
    CanaryAudit,
    FineTuneJob,
    JobStatus,
    ModelVersion,
    Task,
    TrainingDataset,
)
from inference.services.training_datasets import DEFAULTS, EPSILON_RANGE, LIMITS, privacy_reserve, privacy_settle
from portal.accounts.actor import Actor, actor_for_membership
from portal.accounts.roles import Cap
from portal.jobs import JobKind, job_beat, job_claim, job_finish, register
from portal.platform.locks import for_update
from portal.platform.workers import generation_queue, serving_queue

WORKER = AuditActor.system("training worker")


def _adapter_check(version: ModelVersion, adapter: dict[str, Any]) -> dict[str, Any]:
    """A generative base's adapters, checked against its architecture (built from its config on the meta
    device: no weights read, no code of the upload's run)."""
    chosen = {**private_lm.ADAPTER_DEFAULTS, **{k: v for k, v in adapter.items() if v is not None}}
    rank, alpha, targets = chosen["rank"], chosen["alpha"], chosen["targets"]
    if not isinstance(rank, int) or not private_lm.RANK_RANGE[0] <= rank <= private_lm.RANK_RANGE[1]:
        raise InvalidDataset(gettext('lora_rank must be a whole number between %(value)s and %(value2)s; got %(rank)s.') % {"value": private_lm.RANK_RANGE[0], "value2": private_lm.RANK_RANGE[1], "rank": rank})
    if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1024:
        raise InvalidDataset(gettext('lora_alpha must be above 0 and at most 1024; got %(alpha)s.') % {"alpha": alpha})
    if (not isinstance(targets, list) or not 1 <= len(targets) <= 16
            or not all(isinstance(t, str) and t.replace("_", "").isalnum() for t in targets)):
        raise InvalidDataset(gettext("lora_targets lists 1 to 16 layer names (letters, digits and '_')."))
    from transformers import AutoModelForCausalLM

    from inference.runtime import meta_skeleton

    skeleton = meta_skeleton(version, AutoModelForCausalLM)
    try:
        private_lm.check_adapter(skeleton, chosen)
    except private.NotTrainable as exc:
        raise InvalidDataset(gettext('lora_targets: %(exc)s.') % {"exc": exc}) from None
    return {"method": "lora", "rank": rank, "alpha": float(alpha), "targets": list(targets)}


def _trainability_check(version: ModelVersion) -> None:
    """Asks Opacus's validator about the base model's layers before anything runs (its config, not its weights)."""
    if version.task == Task.GENERATION:
        if version.framework != "transformers":
            raise NotTrainable(gettext('%(version)s is stored as %(framework)s; LoRA adapters are trained on float weights: fine-tune its source version.') % {"version": version, "framework": version.framework})
        return
    if version.task != Task.TEXT:
        raise NotTrainable(gettext("%(version)s is a %(task)s model (TorchScript); Opacus needs the model's own layers to compute per-sample gradients, so only Hugging Face text classifiers are trained.") % {"version": version, "task": version.task})
    from inference.runtime import artifact_folder

    try:
        private.check_folder(artifact_folder(version), secure_mode=settings.DP_SECURE_MODE)
    except private.NotTrainable as exc:
        raise NotTrainable(str(exc)) from None


def finetune_create(*, actor: Actor, dataset: TrainingDataset, base_version: ModelVersion, target_epsilon: float,
                    target_delta: float | None = None, adapter: dict[str, Any] | None = None,
                    **params: Any) -> FineTuneJob:
    """Plans the run, reserves its budget, queues it; a refusal (4xx) leaves nothing behind.

    `adapter` (generative bases): the LoRA adapters' rank, alpha and target layers (defaults:
    inference/ml/private_lm.ADAPTER_DEFAULTS)."""
    actor.require(Cap.MODEL_REGISTER, "fine-tune models")
    if base_version.model_id != dataset.model_id:
        raise InvalidDataset(gettext('%(name)s was uploaded for %(name2)s, not %(name3)s.') % {"name": dataset.name, "name2": dataset.model.name, "name3": base_version.model.name})
    chosen = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    for key, (low, high) in LIMITS.items():
        if not low <= chosen[key] <= high:
            raise InvalidDataset(gettext('%(key)s must be between %(low)s and %(high)s; got %(value)s.') % {"key": key, "low": f"{low:g}", "high": f"{high:g}", "value": chosen[key]})
    if chosen["lr_schedule"] not in dp_accounting.SCHEDULES:
        raise InvalidDataset(gettext('lr_schedule must be one of %(join)s; got %(lr_schedule)r.') % {"join": ', '.join(dp_accounting.SCHEDULES), "lr_schedule": chosen['lr_schedule']})
    chosen["batch_size"] = int(chosen["batch_size"])
    chosen["epochs"] = int(chosen["epochs"])
    if chosen["batch_size"] > dataset.train_rows:
        raise InvalidDataset(gettext('batch_size must not exceed the %(train_rows)s training rows.') % {"train_rows": dataset.train_rows})
    delta = dataset.delta_cap if target_delta is None else target_delta
    if not EPSILON_RANGE[0] <= target_epsilon <= dataset.epsilon_cap:
        raise InvalidDataset(gettext("target_epsilon must be between %(value)s and the dataset's cap %(epsilon_cap)s; got %(target_epsilon)s.") % {"value": EPSILON_RANGE[0], "epsilon_cap": f"{dataset.epsilon_cap:g}", "target_epsilon": target_epsilon})
    if not 0 < delta <= dataset.delta_cap:
        raise InvalidDataset(gettext("target_delta must be above 0 and at most the dataset's %(delta_cap)s; got %(delta)s.") % {"delta_cap": f"{dataset.delta_cap:g}", "delta": delta})
    _trainability_check(base_version)
    generative = base_version.task == Task.GENERATION
    if adapter and not generative:
        raise InvalidDataset(gettext('LoRA adapters are for generative models; a classifier is fine-tuned whole.'))
    chosen_adapter = _adapter_check(base_version, adapter or {}) if generative else {}
    plan = dp_accounting.plan_run(target_epsilon=target_epsilon, target_delta=delta, rows=dataset.train_rows, **chosen)
    queue = generation_queue() if generative else serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No %(value)sworker is running; the fine-tuning job was not created.') % {"value": 'generation ' if generative else ''})
    with transaction.atomic():
        job = FineTuneJob.objects.create(organization=actor.organization, dataset=dataset, base_version=base_version,
                                         plan=plan.as_dict(), adapter=chosen_adapter, created_by=actor.user)
        entry = privacy_reserve(dataset=dataset, job=job, plan=plan)
        audit_record(
            action="finetune.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.FineTuneJob", target_id=job.pk,
            payload={"model": base_version.model.name, "base_version": base_version.version, "dataset": dataset.pk,
                     "dataset_sha256": dataset.sha256, "plan": plan.as_dict(), "adapter": chosen_adapter,
                     "ledger_entry": entry.pk},
        )
        FINETUNES.send_on_commit(job.pk, queue=queue)
    return job


PrivateRun = TypeVar("PrivateRun", FineTuneJob, CanaryAudit)


def private_run_cancel(*, actor: Actor, job: PrivateRun, what: str, action: str) -> PrivateRun:
    """Asks a private run (a fine-tuning job, a canary audit) to stop at its next step; one no worker has
    taken yet is settled at once, having spent nothing of its dataset's budget."""
    model = type(job)
    with transaction.atomic():
        locked = for_update(model.objects.all()).get(pk=job.pk)
        if locked.status not in (JobStatus.PENDING, JobStatus.RUNNING):
            raise JobNotCancellable(gettext('%(what)s %(pk)s is %(status)s; only a pending or running one can be cancelled.') % {"what": what, "pk": job.pk, "status": locked.status})
        locked.cancel_requested = True
        if locked.status == JobStatus.PENDING:  # never started: nothing spent
            locked.status, locked.finished_at = JobStatus.CANCELLED, timezone.now()
            privacy_settle(job=locked, steps_spent=0)
        locked.save(update_fields=["cancel_requested", "status", "finished_at"])
        audit_record(action=action, actor=actor.audit_actor, organization_id=job.organization_id,
                     target_type=f"inference.{model.__name__}", target_id=job.pk, payload={"status": locked.status})
    return locked


def finetune_cancel(*, actor: Actor, job: FineTuneJob) -> FineTuneJob:
    actor.require(Cap.MODEL_REGISTER, "cancel fine-tuning")
    return private_run_cancel(actor=actor, job=job, what="Fine-tuning job", action="finetune.cancel_requested")


class _Hooks:
    """The training loop's callbacks: progress and heartbeat, cancellation, checkpoints to the artifact storage.

    For a fine-tuning job, and for a canary audit's private run (inference/services/canary_audits.py):
    both models have the progress fields, `checkpoint_path` and `cancel_requested`."""

    def __init__(self, job: FineTuneJob | CanaryAudit) -> None:
        self.job = job
        self.model = type(job)
        name = "audit" if isinstance(job, CanaryAudit) else "job"
        self.path = job.checkpoint_path or f"training/{job.organization_id}/{name}-{job.pk}-checkpoint.pt"

    def progress(self, p: private.Progress) -> None:
        job_beat(self.model, self.job.pk, steps_done=p.step, epoch=p.epoch, loss=p.loss, epsilon_spent=p.epsilon)

    def should_stop(self) -> bool:
        return self.model.objects.filter(pk=self.job.pk, cancel_requested=True).exists()

    def checkpoint(self, state: private.Checkpoint) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(state.__dict__, buffer)
        if default_storage.exists(self.path):
            default_storage.delete(self.path)
        saved = default_storage.save(self.path, ContentFile(buffer.getvalue()))
        job_beat(self.model, self.job.pk, checkpoint_path=saved)

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
    plan = dp_accounting.Plan(**job.plan)
    with default_storage.open(job.dataset.path, "rb") as handle:
        content = json.loads(handle.read())
    from inference.ml.device import best_device
    from inference.runtime import artifact_folder

    device = best_device()
    hooks = _Hooks(job)
    resume = hooks.resume()
    if job.base_version.task == Task.GENERATION:
        _run_generative(job, plan, content, device, hooks, resume)
        return
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
        _stopped(job, outcome, device, hooks)
        return
    accuracy = private.accuracy(model, tokenizer, held_texts, held_labels, device=device)
    _register_result(job=job, plan=plan, outcome=outcome, model=model, tokenizer=tokenizer, device=device,
                     quality={"metric": "accuracy", "value": accuracy, "base": base_accuracy})
    hooks.discard()


def _stopped(job: FineTuneJob, outcome: private.Outcome, device: str, hooks: _Hooks) -> None:
    """A run cancelled part way: settled at the steps it took, its checkpoint removed."""
    with transaction.atomic():
        if not job_finish(FineTuneJob, job.pk, status=JobStatus.CANCELLED, steps_done=outcome.steps,
                          epsilon_spent=outcome.epsilon, device=device):
            return  # failed meanwhile: settled there
        privacy_settle(job=job, steps_spent=outcome.steps)
        audit_record(action="finetune.cancelled", actor=WORKER, organization_id=job.organization_id,
                     target_type="inference.FineTuneJob", target_id=job.pk,
                     payload={"steps": outcome.steps, "epsilon_spent": outcome.epsilon})
    hooks.discard()


def _run_generative(job: FineTuneJob, plan: dp_accounting.Plan, content: dict[str, Any], device: str, hooks: _Hooks,
                    resume: private.Checkpoint | None) -> None:
    """LoRA adapters trained privately on a generative base; the merged result registered as a draft."""
    import torch
    from transformers import AutoTokenizer

    from inference.ml.language_models import load_causal_lm
    from inference.runtime import artifact_folder

    torch.set_num_threads(settings.GENERATION_THREADS)
    folder = artifact_folder(job.base_version)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    base = load_causal_lm(folder)
    held = content["holdout"]

    def beat() -> None:
        job_beat(FineTuneJob, job.pk)

    base_perplexity = private_lm.perplexity(base, tokenizer, held, device=device, beat=beat)
    model = private_lm.with_adapters(base, job.adapter)
    outcome = private_lm.train_private(
        model, tokenizer, content["train"], plan, device=device, secure_mode=settings.DP_SECURE_MODE, seed=job.pk,
        resume=resume, checkpoint=hooks.checkpoint, checkpoint_every=settings.FINETUNE_CHECKPOINT_SECONDS,
        progress=hooks.progress, should_stop=hooks.should_stop)
    if outcome.stopped:
        _stopped(job, outcome, device, hooks)
        return
    perplexity = private_lm.perplexity(model, tokenizer, held, device=device, beat=beat)
    merged = private_lm.merged(model).to("cpu")
    _register_result(job=job, plan=plan, outcome=outcome, model=merged, tokenizer=tokenizer, device=device,
                     quality={"metric": "perplexity", "value": perplexity, "base": base_perplexity})
    hooks.discard()


def _register_result(*, job: FineTuneJob, plan: dp_accounting.Plan, outcome: private.Outcome, model: Any, tokenizer: Any,
                     device: str, quality: dict[str, Any]) -> None:
    """`quality`: the held-out figure of the result and of its base ({"metric": accuracy | perplexity, "value", "base"})."""
    from inference.ml import artifacts
    from inference.services.uploads import model_version_register

    dataset, base = job.dataset, job.base_version
    metric, value, before = quality["metric"], quality["value"], quality["base"]
    guarantee = {
        "epsilon": round(outcome.epsilon, 6), "delta": plan.target_delta, "accountant": "RDP (Opacus RDPAccountant)",
        "mechanism": f"DP-SGD, Poisson sampling, flat clipping: {private.CLIPPING.get(outcome.clipping, outcome.clipping)}", "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate, "steps": outcome.steps, "epochs": plan.epochs, "batch_size": plan.batch_size,
        "max_grad_norm": plan.max_grad_norm, "learning_rate": plan.learning_rate, "lr_schedule": plan.lr_schedule,
        "dataset": dataset.name,
        "dataset_sha256": dataset.sha256, "training_rows": dataset.train_rows, "base_version": base.version,
        "holdout_rows": dataset.holdout_rows, f"holdout_{metric}": round(value, 4),
        f"base_holdout_{metric}": round(before, 4), "secure_mode": settings.DP_SECURE_MODE, "job": job.pk,
        "unit": "one record (example-level privacy)",
    }
    if job.adapter:
        guarantee["adapter"] = (f"LoRA rank {job.adapter['rank']}, alpha {job.adapter['alpha']:g}, on "
                                f"{', '.join(job.adapter['targets'])}; the base weights frozen, the adapters merged "
                                "into them")
    if metric == "perplexity":
        measured = (f"Perplexity on {dataset.holdout_rows} held-out records: {value:.2f} (base v{base.version}: "
                    f"{before:.2f}).")
    else:
        measured = (f"Accuracy on {dataset.holdout_rows} held-out rows: {value:.4f} (base v{base.version}: "
                    f"{before:.4f}).")
    what = "LoRA adapters trained" if job.adapter else "Fine-tuned"
    card = {**base.card,
            "training_data": f"{what} from v{base.version} with differential privacy (epsilon {outcome.epsilon:.2f}, "
            f"delta {plan.target_delta:g}) on {dataset.name} ({dataset.train_rows} rows, sha256 {dataset.sha256[:16]}…). "
            + (base.card.get("training_data") or ""),
            "metrics": f"{measured} The held-out rows are never trained on; this figure is not covered by the DP "
            "guarantee."}
    metrics = {f"holdout_{metric}": round(value, 4), f"base_holdout_{metric}": round(before, 4)}
    result = ({"accuracy": value, "base_accuracy": before} if metric == "accuracy"
              else {"perplexity": value, "base_perplexity": before})
    folder = Path(tempfile.mkdtemp(prefix="steward-finetune-"))
    try:
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        membership = job.created_by.memberships.get(organization=job.organization)
        actor = actor_for_membership(job.created_by, job.organization, membership.role)
        with transaction.atomic():
            version = model_version_register(
                actor=actor, name=base.model.name, task=base.task, archive=io.BytesIO(artifacts.pack_directory(folder)),
                card=card, description=base.model.description, metrics=metrics, privacy=guarantee,
            )
            if not job_finish(FineTuneJob, job.pk, result_version=version, steps_done=outcome.steps,
                              epsilon_spent=outcome.epsilon, device=device,
                              result={**result, "seconds": outcome.seconds, "final_loss": outcome.final_loss}):
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
