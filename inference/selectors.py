"""Reading models, versions, predictions and jobs, always within the actor's organisation."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.utils.translation import gettext

from inference.exceptions import ModelNotFound, ModelNotServable
from inference.models import (
    BatchJob,
    CanaryAudit,
    Completion,
    CompletionExplanation,
    Compression,
    Evaluation,
    Explanation,
    FineTuneJob,
    GlobalExplanation,
    GuardrailPolicy,
    JobStatus,
    ModelAlias,
    ModelTransition,
    ModelUpload,
    ModelVersion,
    Prediction,
    RegisteredModel,
    TrainingDataset,
    VersionStatus,
)
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.platform.exceptions import NotFound
from portal.platform.prebuilt import Prebuilt

REF = re.compile(r"^(?P<name>[-a-zA-Z0-9_]+)(@(?P<ref>[-a-zA-Z0-9_]+))?$")


def _sees_unapproved(actor: Actor) -> bool:
    return actor.can(Cap.MODEL_REGISTER) or actor.can(Cap.MODEL_REVIEW) or actor.can(Cap.AUDIT_READ)


def version_list_visible(*, actor: Actor) -> QuerySet[ModelVersion]:
    versions = ModelVersion.objects.filter(model__organization=actor.organization)
    if not _sees_unapproved(actor):  # consumers see what serves them
        versions = versions.filter(status=VersionStatus.APPROVED)
    return versions


def model_list(*, actor: Actor) -> QuerySet[RegisteredModel]:
    visible = version_list_visible(actor=actor).order_by("-version")
    return (
        RegisteredModel.objects.filter(organization=actor.organization, versions__in=visible)
        .distinct()
        .prefetch_related(Prefetch("versions", queryset=visible), "aliases__version")
        .order_by("name")
    )


def model_get(*, actor: Actor, name: str) -> RegisteredModel:
    model = model_list(actor=actor).filter(name=name).first()
    if model is None:
        raise ModelNotFound(gettext('No model named %(name)r in this organisation.') % {"name": name})
    return model


def version_get(*, actor: Actor, name: str, version: int) -> ModelVersion:
    found = (
        version_list_visible(actor=actor)
        .select_related("model")
        .filter(model__name=name, version=version)
        .first()
    )
    if found is None:
        raise ModelNotFound(gettext('No version %(version)s of model %(name)r in this organisation.') % {"version": version, "name": name})
    return found


_VERSION_BY_NUMBER = Prebuilt(
    [(ModelVersion, "v"), (RegisteredModel, "m")],
    "FROM {ModelVersion} v INNER JOIN {RegisteredModel} m ON m.{RegisteredModel.id} = v.{ModelVersion.model} "
    "WHERE m.{RegisteredModel.organization} = %s AND m.{RegisteredModel.name} = %s AND v.{ModelVersion.version} = %s",
)
_VERSION_BY_ALIAS = Prebuilt(
    [(ModelVersion, "v"), (RegisteredModel, "m")],
    "FROM {ModelAlias} a INNER JOIN {ModelVersion} v ON v.{ModelVersion.id} = a.{ModelAlias.version} "
    "INNER JOIN {RegisteredModel} m ON m.{RegisteredModel.id} = v.{ModelVersion.model} "
    "WHERE m.{RegisteredModel.organization} = %s AND m.{RegisteredModel.name} = %s AND a.{ModelAlias.model} = m.{RegisteredModel.id} "
    "AND a.{ModelAlias.name} = %s",
    names=[ModelAlias],
)


TRIAL_STATES = (VersionStatus.DRAFT, VersionStatus.SUBMITTED)


def _may_try(actor: Actor) -> bool:
    return actor.can(Cap.MODEL_REGISTER) or actor.can(Cap.MODEL_REVIEW)


def version_resolve_for_serving(*, actor: Actor, ref: str, trial: bool = False) -> ModelVersion:
    """`name`, `name@alias` or `name@3` to a servable version (the `production` alias by default).

    `trial` (the playground): owners and reviewers may also try a draft or submitted version, whose
    predictions the log marks as made by a version not approved. Consumers never see one.
    """
    match = REF.match(ref)
    if match is None:
        raise ModelNotFound(gettext('%(ref)r is not a model reference (name, name@alias or name@version).') % {"ref": ref})
    name, pointer = match["name"], match["ref"] or "production"
    # One query on the way every prediction takes, built once (the ORM compiled it anew on every
    # request); the model is looked up on its own only to say what is missing.
    version: ModelVersion | None = None
    if pointer.isdigit():
        number = int(pointer)  # beyond the column's range: no such version (and no overflow in the driver)
        found = _VERSION_BY_NUMBER.fetch_one([actor.organization.pk, name, number]) if number < 2**31 else None
    else:
        found = _VERSION_BY_ALIAS.fetch_one([actor.organization.pk, name, pointer])
    if found is not None:
        (row, model), _ = found
        assert isinstance(row, ModelVersion)
        ModelVersion.model.field.set_cached_value(row, model)
        version = row
    if version is None:
        if not RegisteredModel.objects.filter(organization=actor.organization, name=name).exists():
            raise ModelNotFound(gettext('No model named %(name)r in this organisation.') % {"name": name})
        if pointer.isdigit():
            raise ModelNotFound(gettext('Model %(name)r has no version %(pointer)s.') % {"name": name, "pointer": pointer})
        raise ModelNotFound(gettext('Model %(name)r has no alias %(pointer)r.') % {"name": name, "pointer": pointer})
    if not version.is_servable and not _sees_unapproved(actor):
        # Consumers do not learn that unapproved versions exist.
        raise ModelNotFound(gettext('Model %(name)r has no servable version %(pointer)s.') % {"name": name, "pointer": pointer})
    if not version.is_servable and not (trial and version.status in TRIAL_STATES and _may_try(actor)):
        raise ModelNotServable(
            gettext('%(name)s@%(version)s is %(status)s; only approved versions serve predictions.') % {"name": name, "version": version.version, "status": version.status}
        )
    return version


def prediction_get(*, actor: Actor, pk: int) -> Prediction:
    found = (
        Prediction.objects.filter(organization=actor.organization, pk=pk)
        .select_related("model_version__model")
        .first()
    )
    if found is None:
        raise NotFound(gettext('No such prediction in this organisation.'))
    return found


def openai_models_in_production(*, actor: Actor) -> list[ModelVersion]:
    """What /v1/models lists: the organisation's generative and embedding models whose `production` alias
    points at an approved version (classifiers are served by Steward's own API, not OpenAI's)."""
    aliases = (ModelAlias.objects.filter(model__organization=actor.organization, name="production",
                                         version__task__in=["text-generation", "text-embedding"],
                                         version__status=VersionStatus.APPROVED)
               .select_related("version__model__organization").order_by("model__name"))
    return [alias.version for alias in aliases]


def completion_list(*, actor: Actor, version: ModelVersion | None = None) -> QuerySet[Completion]:
    found = Completion.objects.filter(organization=actor.organization).select_related(
        "model_version__model", "created_by").order_by("-created_at")
    return found.filter(model_version=version) if version is not None else found


def completion_get(*, actor: Actor, pk: int) -> Completion:
    found = completion_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound(gettext('No such completion in this organisation.'))
    return found


def completion_explanation_get(*, actor: Actor, pk: int) -> CompletionExplanation:
    found = CompletionExplanation.objects.filter(organization=actor.organization, pk=pk).select_related(
        "completion", "model_version__model").first()
    if found is None:
        raise NotFound(gettext('No such explanation in this organisation.'))
    return found


def job_list(*, actor: Actor) -> QuerySet[BatchJob]:
    return BatchJob.objects.filter(organization=actor.organization).select_related("model_version__model")


def job_get(*, actor: Actor, pk: int) -> BatchJob:
    found = job_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound(gettext('No such job in this organisation.'))
    return found


def explanation_get(*, actor: Actor, pk: int) -> Explanation:
    found = (Explanation.objects.filter(organization=actor.organization, pk=pk)
             .select_related("model_version__model", "prediction").first())
    if found is None:
        raise NotFound(gettext('No such explanation in this organisation.'))
    return found


def global_explanation_list(*, actor: Actor, version: ModelVersion) -> QuerySet[GlobalExplanation]:
    return (GlobalExplanation.objects.filter(organization=actor.organization, model_version=version)
            .select_related("model_version__model").order_by("-number"))


def global_explanation_get(*, actor: Actor, pk: int) -> GlobalExplanation:
    found = (GlobalExplanation.objects.filter(organization=actor.organization, pk=pk)
             .select_related("model_version__model", "created_by").first())
    if found is None:
        raise NotFound(gettext('No such global explanation in this organisation.'))
    return found


def evaluation_list(*, actor: Actor, version: ModelVersion) -> QuerySet[Evaluation]:
    return (Evaluation.objects.filter(organization=actor.organization, model_version=version)
            .select_related("model_version__model", "created_by"))


def evaluation_get(*, actor: Actor, pk: int) -> Evaluation:
    found = (Evaluation.objects.filter(organization=actor.organization, pk=pk)
             .select_related("model_version__model", "created_by").first())
    if found is None or not (found.model_version.is_servable or _sees_unapproved(actor)):
        raise NotFound(gettext('No such evaluation in this organisation.'))
    return found


def compression_list(*, actor: Actor, version: ModelVersion) -> QuerySet[Compression]:
    """A version's compressions: for those who see drafts (a compression's result is one)."""
    if not _sees_unapproved(actor):
        return Compression.objects.none()
    return (Compression.objects.filter(organization=actor.organization, source_version=version)
            .select_related("source_version__model", "result_version", "created_by"))


def compression_get(*, actor: Actor, pk: int) -> Compression:
    found = (Compression.objects.filter(organization=actor.organization, pk=pk)
             .select_related("source_version__model", "result_version", "created_by").first())
    if found is None or not _sees_unapproved(actor):
        raise NotFound(gettext('No such compression in this organisation.'))
    return found


def canary_audit_list(*, actor: Actor, version: ModelVersion | None = None) -> QuerySet[CanaryAudit]:
    """Canary audits: for those who see drafts (the fine-tuned version they audit is one first)."""
    if not _sees_unapproved(actor):
        return CanaryAudit.objects.none()
    found = CanaryAudit.objects.filter(organization=actor.organization).select_related(
        "version__model", "finetune", "dataset", "created_by")
    return found if version is None else found.filter(version=version)


def canary_audit_get(*, actor: Actor, pk: int) -> CanaryAudit:
    found = canary_audit_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound(gettext('No such canary audit in this organisation.'))
    return found


def version_canary_audit(*, version: ModelVersion) -> CanaryAudit | None:
    """The version's latest finished canary audit (the card, the export)."""
    return (CanaryAudit.objects.filter(version=version, status=JobStatus.DONE).order_by("-finished_at")
            .select_related("version__model", "dataset", "created_by").first())


def dataset_list(*, actor: Actor) -> QuerySet[TrainingDataset]:
    return (TrainingDataset.objects.filter(organization=actor.organization)
            .select_related("model", "created_by").prefetch_related("ledger"))


def dataset_get(*, actor: Actor, pk: int) -> TrainingDataset:
    found = dataset_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound(gettext('No such training dataset in this organisation.'))
    return found


def finetune_list(*, actor: Actor) -> QuerySet[FineTuneJob]:
    return FineTuneJob.objects.filter(organization=actor.organization).select_related(
        "base_version__model", "result_version", "dataset")


def finetune_get(*, actor: Actor, pk: int) -> FineTuneJob:
    found = finetune_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound(gettext('No such fine-tuning job in this organisation.'))
    return found


# ---------------------------------------------------------------- evidence about one version
# Read by the compliance exports (audit.exports), which were authorised on the version already.

def version_history(*, version: ModelVersion) -> list[ModelTransition]:
    return list(version.transitions.select_related("actor").order_by("created_at", "id"))


def version_aliases(*, version: ModelVersion) -> list[str]:
    return sorted(version.aliases.values_list("name", flat=True))


def version_explanations_done(*, version: ModelVersion) -> QuerySet[Explanation]:
    return (Explanation.objects.filter(model_version=version, status=JobStatus.DONE)
            .select_related("model_version__model", "prediction").order_by("-created_at"))


def version_global_explanation_latest(*, version: ModelVersion) -> GlobalExplanation | None:
    return (GlobalExplanation.objects.filter(model_version=version, status=JobStatus.DONE)
            .select_related("model_version__model", "created_by").order_by("-number").first())


def version_finetune_origin(*, version: ModelVersion) -> FineTuneJob | None:
    """The private fine-tuning job that produced this version, if one did."""
    return (FineTuneJob.objects.filter(result_version=version)
            .select_related("base_version__model", "dataset__model", "dataset__created_by", "result_version")
            .first())


def version_predictions(*, version: ModelVersion, since: datetime, until: datetime) -> QuerySet[Prediction]:
    return Prediction.objects.filter(model_version=version, created_at__gte=since, created_at__lt=until)


def guardrail_policy_for(*, organization_id: int, model_id: int) -> GuardrailPolicy | None:
    """The guardrail policy in force for a model: its own, else its organisation's, else none (one query)."""
    found = list(GuardrailPolicy.objects.filter(Q(model_id=model_id) | Q(model__isnull=True),
                                                organization_id=organization_id).select_related("updated_by"))
    own = [p for p in found if p.model_id == model_id]
    return (own or found)[0] if found else None


GUARD_SAMPLE = 20


def version_guardrail_evidence(*, version: ModelVersion, since: datetime, until: datetime) -> dict[str, Any]:
    """A generative version's guardrails for its evidence: the policy in force, the policies' ids (for
    their audited changes), how the period's completions fared, and the latest refusals and flags."""
    model = version.model
    policy = guardrail_policy_for(organization_id=model.organization_id, model_id=model.pk)
    policy_ids = list(GuardrailPolicy.objects.filter(Q(model=model) | Q(model__isnull=True),
                                                     organization_id=model.organization_id).values_list("pk", flat=True))
    completions = Completion.objects.filter(model_version=version, created_at__gte=since, created_at__lt=until)
    outcomes = dict(completions.values_list("guard_outcome").annotate(n=Count("id")).values_list("guard_outcome", "n"))
    unchecked = completions.filter(guard={}).count()
    sample = completions.exclude(guard_outcome="").order_by("-created_at")[:GUARD_SAMPLE]
    return {
        "policy": None if policy is None else {
            "id": policy.pk, "scope": "model" if policy.model_id else "organisation", "revision": policy.revision,
            "mask_pii": policy.mask_pii, "moderation_model": policy.moderation_model,
            "categories": list(policy.categories),
            "input": {"action": policy.input_action, "threshold": policy.input_threshold},
            "output": {"action": policy.output_action, "threshold": policy.output_threshold},
            "blocked_patterns": list(policy.blocked_patterns), "max_output_tokens": policy.max_output_tokens,
            "updated_by": policy.updated_by.username, "updated_at": policy.updated_at.isoformat()},
        "policy_ids": policy_ids,
        "decisions": {"completions": sum(outcomes.values()), "unchecked": unchecked,
                      "passed": outcomes.get("", 0) - unchecked, "flagged": outcomes.get("flagged", 0),
                      "blocked": outcomes.get("blocked", 0), "filtered": outcomes.get("filtered", 0)},
        "sample": [{"completion": c.pk, "at": c.created_at.isoformat(), "outcome": c.guard_outcome,
                    "policy_revision": c.guard.get("revision"), "decisions": c.guard.get("decisions", [])}
                   for c in sample],
    }


def language_mismatches(*, version: ModelVersion) -> list[dict[str, Any]]:
    """The requests to a version (predictions and completions) whose input looked like a language its card
    does not list, counted by that language, most first."""
    from django.db.models import Count

    from inference import languages
    from inference.models import Completion

    counts: dict[str, int] = {}
    for model in (Prediction, Completion):
        rows = (model.objects.filter(model_version=version).exclude(unsupported_language="")
                .values("unsupported_language").annotate(n=Count("id")))
        for row in rows:
            counts[row["unsupported_language"]] = counts.get(row["unsupported_language"], 0) + row["n"]
    return [{"code": code, "name": languages.name(code), "count": n}
            for code, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def model_energy_daily(*, model: RegisteredModel, days: int = 30) -> list[dict[str, Any]]:
    """The energy of a model's served work (all versions: predictions and completions) per UTC day."""
    from datetime import UTC, timedelta
    from datetime import time as day_start

    from django.db.models.functions import TruncDate
    from django.utils import timezone

    until = timezone.now().astimezone(UTC).date()
    since = until - timedelta(days=days - 1)
    start = datetime.combine(since, day_start.min, tzinfo=UTC)
    found: dict[Any, list[float]] = {}
    for rows in (Prediction.objects.filter(model_version__model=model, created_at__gte=start, energy_wh__isnull=False),
                 Completion.objects.filter(model_version__model=model, created_at__gte=start, energy_wh__isnull=False)):
        for row in (rows.annotate(day=TruncDate("created_at", tzinfo=UTC)).values("day")
                    .annotate(energy=Sum("energy_wh"), requests=Count("pk"))):
            entry = found.setdefault(row["day"], [0.0, 0])
            entry[0] += row["energy"] or 0.0
            entry[1] += row["requests"]
    return [{"day": (since + timedelta(days=i)).isoformat(), "energy_wh": found.get(since + timedelta(days=i), [0.0, 0])[0],
             "requests": found.get(since + timedelta(days=i), [0.0, 0])[1], "rows": 0} for i in range(days)]


def version_completion_explanations(*, version: ModelVersion, limit: int = 5) -> dict[str, Any]:
    """A generative version's finished attributions: how many, the worst residual, the latest few."""
    done = CompletionExplanation.objects.filter(model_version=version, status=JobStatus.DONE).order_by("-finished_at")
    residuals = [r for r in done.values_list("residual", flat=True) if r is not None]
    sample = []
    for job in done[:limit]:
        words = sorted((job.result or {}).get("words", []), key=lambda w: -w["value"])
        sample.append({"id": job.pk, "completion": job.completion_id, "span": (job.result or {}).get("span_text", ""),
                       "method": job.method, "evaluations": job.evaluations, "residual": job.residual,
                       "top_words": [{"word": w["word"], "value": w["value"]} for w in words[:5]]})
    return {"total": done.count(), "max_residual": max(residuals) if residuals else None, "sample": sample}


def version_serving_statistics(*, version: ModelVersion, since: datetime, until: datetime) -> dict[str, Any]:
    """Volume, latency (request to answer, and compute) and errors of a version over [since, until):
    its requests (synchronous predictions), and its batch jobs (`batch`: jobs, the rows they
    predicted, failed, cancelled, unfinished); `rows_all` counts the rows of both.

    Counts are aggregated by the database (per day and per device); only the two latency figures of
    each request are read, streamed into arrays, so a year of traffic stays a few numbers a row.
    """
    import numpy as np
    from django.db.models import Count, F, Sum
    from django.db.models.functions import TruncDate

    found = version_predictions(version=version, since=since, until=until)
    failed = Count("pk", filter=Q(status=JobStatus.FAILED))
    daily = [{"day": row["day"].isoformat(), "requests": row["requests"], "rows": row["rows"] or 0,
              "failed": row["failed"]}
             for row in found.annotate(day=TruncDate("created_at")).values("day")
             .annotate(requests=Count("pk"), rows=Sum("rows"), failed=failed).order_by("day")]
    devices = {row["device"]: row["n"] for row in found.exclude(device="").values("device").annotate(n=Count("pk"))}
    unfinished = found.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING]).count()
    answered = found.filter(status=JobStatus.DONE, finished_at__isnull=False).annotate(
        took=F("finished_at") - F("created_at")).values_list("took", flat=True).iterator(chunk_size=20_000)
    latency = np.fromiter((t.total_seconds() * 1000 for t in answered), dtype=np.float64)
    computed = found.exclude(compute_ms=None).values_list("compute_ms", flat=True).iterator(chunk_size=20_000)
    compute = np.fromiter(computed, dtype=np.float64)
    requests = sum(d["requests"] for d in daily)
    failures = sum(d["failed"] for d in daily)

    def spread(values: Any) -> dict[str, float | None]:
        if not len(values):
            return {"p50": None, "p95": None, "p99": None, "max": None}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
                "max": round(float(values.max()), 2)}

    jobs = BatchJob.objects.filter(model_version=version, created_at__gte=since, created_at__lt=until).aggregate(
        jobs=Count("pk"), rows=Sum("rows_done"), failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
        cancelled=Count("pk", filter=Q(status=JobStatus.CANCELLED)),
        unfinished=Count("pk", filter=Q(status__in=[JobStatus.PENDING, JobStatus.RUNNING])))
    batch = {key: value or 0 for key, value in jobs.items()}  # rows: those the jobs predicted
    rows = sum(d["rows"] for d in daily)
    return {
        "energy": _version_energy(version, since=since, until=until),
        "since": since.isoformat(), "until": until.isoformat(), "requests": requests,
        "rows": rows, "rows_all": rows + batch["rows"], "batch": batch, "failed": failures, "unfinished": unfinished,
        "error_rate": round(failures / requests, 6) if requests else None,
        "latency_ms": spread(latency), "compute_ms": spread(compute), "devices": devices, "daily": daily,
    }


def _version_energy(version: ModelVersion, *, since: datetime, until: datetime) -> dict[str, Any]:
    """The energy of a version's predictions and completions in [since, until), the part estimated, and
    its carbon at the grid's intensity now."""
    from inference.services.energy import grid_intensity

    wh = estimated = 0.0
    for rows in (Prediction.objects, Completion.objects):
        found = rows.filter(model_version=version, created_at__gte=since, created_at__lt=until).aggregate(
            energy=Sum("energy_wh"), estimated=Sum("energy_wh", filter=Q(energy_estimated=True)))
        wh += found["energy"] or 0.0
        estimated += found["estimated"] or 0.0
    intensity, source = grid_intensity()
    return {"energy_wh": wh, "estimated_wh": estimated,
            "carbon_g": wh / 1000 * intensity, "grid_g_per_kwh": intensity, "grid_source": source,
            "method": "power x compute time: NVML or RAPL where present, else CodeCarbon's power model (estimated)"}


def version_audit_targets(*, version: ModelVersion, since: datetime, until: datetime,
                          predictions: int = 100) -> list[tuple[str, list[str]]]:
    """What the audit log says about a version (in this app) is recorded against these targets: the
    version, its model (aliases), explanations, fine-tuning, and its latest `predictions` in the period."""
    targets = [("inference.ModelVersion", [str(version.pk)]), ("inference.RegisteredModel", [str(version.model_id)])]
    explanations = Explanation.objects.filter(model_version=version).values_list("pk", flat=True)
    targets.append(("inference.Explanation", [str(pk) for pk in explanations]))
    globals_ = GlobalExplanation.objects.filter(model_version=version).values_list("pk", flat=True)
    targets.append(("inference.GlobalExplanation", [str(pk) for pk in globals_]))
    jobs = FineTuneJob.objects.filter(Q(result_version=version) | Q(base_version=version)).values_list("pk", flat=True)
    targets.append(("inference.FineTuneJob", [str(pk) for pk in jobs]))
    recent = (version_predictions(version=version, since=since, until=until)
              .order_by("-created_at").values_list("pk", flat=True)[:predictions])
    targets.append(("inference.Prediction", [str(pk) for pk in recent]))
    return [(kind, ids) for kind, ids in targets if ids]


def model_upload_get(*, actor: Actor, pk: int) -> ModelUpload:
    """An upload of the actor's organisation, seen by those who may register models."""
    actor.require(Cap.MODEL_REGISTER, "see model uploads")
    found = ModelUpload.objects.filter(organization=actor.organization, pk=pk).select_related("version__model").first()
    if found is None:
        raise NotFound(gettext('No such model upload in this organisation.'))
    return found
