"""Canary audits: how much a privately fine-tuned language model lets single records be pulled back
out of it, measured (inference/ml/canaries.py) and set against the bound its epsilon implies.

An audit repeats a version's private LoRA fine-tuning on a copy of its training data with secret
canaries inserted: the private run (the same noise, batch, steps, clipping and adapters; charged to
the dataset's privacy ledger like any run on it, checkpointed, resumable) and, when asked, the same
run without privacy, so that the report shows what DP bought. The non-private run is not covered by
any guarantee: its weights stay on the worker and only its canaries' exposures are kept, which the
report says. The result goes on the audited version's card (an evidence provider) and in its
compliance export.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference import selectors
from inference.evidence import Evidence, register_evidence_provider
from inference.exceptions import InvalidInput, NotAuditable, WorkerUnavailable
from inference.ml import canaries, dp_accounting
from inference.models import CanaryAudit, JobStatus, ModelVersion, Task
from inference.services.finetuning import _Hooks, private_run_cancel
from inference.services.training_datasets import privacy_reserve, privacy_settle
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobKind, job_beat, job_claim, job_finish, register
from portal.platform.workers import generation_queue

WORKER = AuditActor.system("training worker")
DEFAULTS: dict[str, Any] = {"format": canaries.DEFAULT_FORMAT, "digits": 9, "canaries": 10, "insertions": 1,
                            "references": 1000, "compare": True}
LIMITS: dict[str, tuple[int, int]] = {"digits": (6, 15), "canaries": (2, 50), "insertions": (1, 16),
                                      "references": (50, 5000)}


def _space(params: dict[str, Any]) -> canaries.Space:
    return canaries.Space(format=params["format"], digits=params["digits"])


def canary_audit_create(*, actor: Actor, version: ModelVersion, **params: Any) -> CanaryAudit:
    """Checks the request, draws the canaries, reserves the private run's budget and queues the audit.

    Raises NotAuditable (409), InvalidInput (400), BudgetExceeded (409), WorkerUnavailable (503);
    nothing is stored on any of them."""
    actor.require(Cap.MODEL_REGISTER, "audit fine-tuned versions")
    origin = selectors.version_finetune_origin(version=version)
    if origin is None:
        raise NotAuditable(gettext("%(version)s was not fine-tuned in Steward: a canary audit repeats a version's private fine-tuning with canaries inserted, so it needs the run that made the version.") % {"version": version})
    if version.task != Task.GENERATION or not origin.adapter:
        raise NotAuditable(gettext('%(version)s is a classifier: canary exposure measures how likely a language model finds a secret sequence, so audits are for privately fine-tuned generative versions.') % {"version": version})
    chosen = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    if chosen["format"] not in canaries.FORMATS:
        raise InvalidInput(gettext('Unknown canary format %(format)r; use %(join)s.') % {"format": chosen['format'], "join": ', '.join(canaries.FORMATS)})
    for key, (low, high) in LIMITS.items():
        value = chosen[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(gettext('%(key)s must be a whole number between %(low)s and %(high)s; got %(value)r.') % {"key": key, "low": low, "high": high, "value": value})
    if not isinstance(chosen["compare"], bool):
        raise InvalidInput(gettext('compare is true or false.'))
    space = _space(chosen)  # at least 10^6 secrets: the 5,050 drawn at most are a small share of them
    dataset = origin.dataset
    plan = canaries.audit_plan(dp_accounting.Plan(**origin.plan),
                               dataset.train_rows + chosen["canaries"] * chosen["insertions"])
    queue = generation_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No generation worker is running; the canary audit was not created.'))
    drawn = space.draw(chosen["canaries"])
    references = space.draw(chosen["references"], avoid=set(drawn))
    with transaction.atomic():
        audit = CanaryAudit.objects.create(
            organization=actor.organization, version=version, finetune=origin, dataset=dataset, params=chosen,
            drawn={"canaries": drawn, "references": references}, plan=plan.as_dict(), steps_total=plan.steps,
            created_by=actor.user)
        entry = privacy_reserve(dataset=dataset, job=audit, plan=plan)
        audit_record(action="canary_audit.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
                     target_type="inference.CanaryAudit", target_id=audit.pk,
                     payload={"model": version.model.name, "version": version.version, "finetune": origin.pk,
                              "dataset": dataset.pk, "dataset_sha256": dataset.sha256, "params": chosen,
                              "plan": plan.as_dict(), "ledger_entry": entry.pk})
        AUDITS.send_on_commit(audit.pk, queue=queue)
    return audit


def canary_audit_cancel(*, actor: Actor, audit: CanaryAudit) -> CanaryAudit:
    actor.require(Cap.MODEL_REGISTER, "cancel canary audits")
    return private_run_cancel(actor=actor, job=audit, what="Canary audit", action="canary_audit.cancel_requested")


# ---------------------------------------------------------------- running it (generation worker)

def canary_audit_run(*, audit_id: int) -> None:
    """The base's, the private run's and the non-private run's exposures; a resumed audit goes on
    from the private run's checkpoint, or after it when that was measured already."""
    import torch
    from transformers import AutoTokenizer

    from inference.ml.device import best_device
    from inference.ml.language_models import load_causal_lm
    from inference.runtime import artifact_folder

    if not job_claim(CanaryAudit, audit_id, keep_started=True, only={"cancel_requested": False}):
        return
    audit = CanaryAudit.objects.select_related("finetune__base_version", "dataset", "version__model").get(pk=audit_id)
    torch.set_num_threads(settings.GENERATION_THREADS)
    with default_storage.open(audit.dataset.path, "rb") as handle:
        content = json.loads(handle.read())
    folder = artifact_folder(audit.finetune.base_version)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    hooks = _Hooks(audit)
    plan = dp_accounting.Plan(**audit.plan)
    device = best_device()

    def private_done(measured: dict[str, Any]) -> None:
        with transaction.atomic():  # what the private run spent is settled as soon as it is known
            job_beat(CanaryAudit, audit_id, result={"private": measured}, steps_done=measured["steps"])
            privacy_settle(job=audit, steps_spent=measured["steps"])
        hooks.discard()

    found = canaries.run(
        lambda: load_causal_lm(folder), tokenizer, content["train"], plan, audit.finetune.adapter, _space(audit.params),
        audit.drawn["canaries"], audit.drawn["references"], insertions=audit.params["insertions"],
        compare=audit.params["compare"], device=device, seed=audit.pk, secure_mode=settings.DP_SECURE_MODE,
        private_measured=(audit.result or {}).get("private"),
        runs=canaries.Runs(
            stage=lambda name: job_beat(CanaryAudit, audit_id, stage=name), private_done=private_done,
            resume=hooks.resume(), checkpoint=hooks.checkpoint, checkpoint_every=settings.FINETUNE_CHECKPOINT_SECONDS,
            progress=hooks.progress, should_stop=hooks.should_stop, beat=lambda done: job_beat(CanaryAudit, audit_id)))
    if found is None:
        _stopped(audit, hooks)
        return
    found.update({"insertions": audit.params["insertions"], "references": audit.params["references"],
                  "format": canaries.FORMATS[audit.params["format"]], "device": device,
                  "delta": plan.target_delta, "rows_with_canaries": plan.rows})
    with transaction.atomic():
        if not job_finish(CanaryAudit, audit_id, result=found, stage="done"):
            return  # failed meanwhile: settled there
        privacy_settle(job=audit, steps_spent=found["private"]["steps"])
        audit_record(action="canary_audit.completed", actor=WORKER, organization_id=audit.organization_id,
                     target_type="inference.CanaryAudit", target_id=audit.pk,
                     payload={"model": audit.version.model.name, "version": audit.version.version,
                              "summary": summary(found)})


def _stopped(audit: CanaryAudit, hooks: _Hooks) -> None:
    """Cancelled part way: the private run settled at the steps it took (all of them once measured)."""
    current = CanaryAudit.objects.get(pk=audit.pk)
    spent = (current.result or {}).get("private", {}).get("steps", current.steps_done)
    with transaction.atomic():
        if not job_finish(CanaryAudit, audit.pk, status=JobStatus.CANCELLED, stage="cancelled"):
            return
        privacy_settle(job=audit, steps_spent=spent)
        audit_record(action="canary_audit.cancelled", actor=WORKER, organization_id=audit.organization_id,
                     target_type="inference.CanaryAudit", target_id=audit.pk, payload={"steps": spent})
    hooks.discard()


def _settle(audit: CanaryAudit) -> dict[str, Any]:
    """A failed audit keeps only what its private run spent of the budget."""
    spent = (audit.result or {}).get("private", {}).get("steps", audit.steps_done)
    privacy_settle(job=audit, steps_spent=spent)
    return {"steps": spent}


AUDITS = register(JobKind(
    name="canary audit", model=CanaryAudit, target_type="inference.CanaryAudit",
    task="inference.tasks.canary_audit_run_task", failed_action="canary_audit.failed", actor=lambda job: WORKER,
    what="Canary audit", settle=_settle, after_failed=lambda job: _Hooks(job).discard(),
    stale_after=timedelta(minutes=5),  # the private run resumes from its checkpoint; scoring beats per batch
))


# ---------------------------------------------------------------- the report

def summary(found: dict[str, Any]) -> str:
    """The audit in one sentence."""
    private = found["private"]
    values = {"canaries": len(private["canaries"]), "times": found["insertions"],
              "private": f"{private['mean_exposure']:.2f}", "epsilon": f"{private['epsilon']:.2f}",
              "bound": f"{found['bound']:.2f}", "space": f"{found['space_bits']:.1f}",
              "base": f"{found['base']['mean_exposure']:.2f}",
              "non_private": f"{found['non_private']['mean_exposure']:.2f}" if "non_private" in found else ""}
    if "non_private" in found:
        return gettext("%(canaries)s canaries inserted %(times)s time(s): mean exposure %(private)s bits under the "
                       "private run (epsilon %(epsilon)s; the bound it implies is %(bound)s bits of %(space)s), "
                       "%(non_private)s bits under the same run without privacy; %(base)s bits before "
                       "fine-tuning.") % values
    return gettext("%(canaries)s canaries inserted %(times)s time(s): mean exposure %(private)s bits under the "
                   "private run (epsilon %(epsilon)s; the bound it implies is %(bound)s bits of %(space)s); %(base)s "
                   "bits before fine-tuning.") % values


def canary_evidence(version: ModelVersion) -> Evidence | None:
    audit = selectors.version_canary_audit(version=version)
    if audit is None or not audit.result:
        return None
    found: dict[str, Any] = audit.result
    within = found["within_bound"]
    return Evidence(
        title=gettext("Privacy audit (canaries)"), summary=summary(found), verdict="pass" if within else "fail",
        url=reverse("canary-audit", args=[audit.pk]), blocks_approval=not within,
        reason="" if within else gettext(
            "The private run's canaries are more exposed (%(private)s bits) than its epsilon allows (%(bound)s bits): "
            "the privacy guarantee stated on this version cannot be relied on until this is explained.") % {
            "private": f"{found['private']['mean_exposure']:.2f}", "bound": f"{found['bound']:.2f}"},
        details={"audit": audit.pk, "bound": found["bound"], "private": found["private"]["mean_exposure"],
                 "non_private": found.get("non_private", {}).get("mean_exposure")},
    )


register_evidence_provider("canary_audit", canary_evidence)
