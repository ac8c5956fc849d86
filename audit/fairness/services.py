"""Bias reports: checked and queued by the web process, computed on a worker, stored and logged.

Reads inference only through its selectors and services (STYLE.md C1).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils.translation import gettext

from audit.fairness import datasets, metrics
from audit.fairness.exceptions import InvalidDataset, InvalidPolicy
from audit.fairness.generative_services import ProbeOptions, generative_check, generative_report_run
from audit.fairness.models import BiasReport, FairnessPolicy, ReportKind
from audit.log.services import AuditActor, audit_record
from inference.evidence import Evidence
from inference.exceptions import WorkerUnavailable, classifier_required
from inference.models import ModelVersion
from portal.accounts.actor import Actor
from portal.accounts.models import Organization
from portal.accounts.roles import Cap
from portal.jobs import JobKind, JobStatus, job_beat, job_claim, job_finish, register, stored_input
from portal.platform.locks import for_update
from portal.platform.workers import generation_queue, serving_queue

logger = logging.getLogger("steward.fairness")
WORKER = AuditActor.system("inference worker")



# ---------------------------------------------------------------- policy

def policy_for(organization: Organization) -> FairnessPolicy:
    """The organisation's policy (the defaults until an admin changes them); not saved by reading."""
    found = FairnessPolicy.objects.filter(organization=organization).first()
    return found or FairnessPolicy(organization=organization)


@transaction.atomic
def fairness_policy_update(
    *, actor: Actor, thresholds: dict[str, Any] | None = None, min_group_size: int | None = None,
    bootstrap_resamples: int | None = None, require_passing_report: bool | None = None,
) -> FairnessPolicy:
    actor.require(Cap.ORG_MANAGE, "change the organisation's fairness policy")
    policy, _ = for_update(FairnessPolicy.objects.all()).get_or_create(organization=actor.organization)
    before = {"thresholds": policy.thresholds, "min_group_size": policy.min_group_size,
              "bootstrap_resamples": policy.bootstrap_resamples,
              "require_passing_report": policy.require_passing_report}
    if thresholds is not None:
        try:
            metrics.thresholds_check(thresholds)
        except ValueError as exc:
            raise InvalidPolicy(gettext('Thresholds: %(exc)s.') % {"exc": exc}) from None
        policy.thresholds = thresholds
    if min_group_size is not None:
        if not 1 <= min_group_size <= 100_000:
            raise InvalidPolicy(gettext('The minimum group size must be between 1 and 100000.'))
        policy.min_group_size = min_group_size
    if bootstrap_resamples is not None:
        if not 100 <= bootstrap_resamples <= 10_000:
            raise InvalidPolicy(gettext('Bootstrap resamples must be between 100 and 10000.'))
        policy.bootstrap_resamples = bootstrap_resamples
    if require_passing_report is not None:
        policy.require_passing_report = require_passing_report
    policy.updated_by = actor.user
    policy.save()
    audit_record(
        action="fairness_policy.updated", actor=actor.audit_actor, organization_id=actor.organization.pk,
        target_type="fairness.FairnessPolicy", target_id=policy.pk,
        payload={"before": before, "after": {"thresholds": policy.thresholds, "min_group_size": policy.min_group_size,
                                             "bootstrap_resamples": policy.bootstrap_resamples,
                                             "require_passing_report": policy.require_passing_report}},
    )
    return policy


# ---------------------------------------------------------------- creating a report

def bias_report_create(
    *, actor: Actor, version: ModelVersion, dataset: str = "upload", upload: Any = None, upload_name: str = "",
    label_column: str = "label", sensitive_columns: list[str] | None = None, favourable_label: str = "",
    terms: list[str] | None = None, score_label: str = "", probe: ProbeOptions | None = None,
) -> BiasReport:
    """Checks the dataset against the model, stores it, and queues the report on a worker.

    Raises:
        InvalidDataset (400), DatasetTooLarge (413): nothing is stored.
        WorkerUnavailable (503): no worker to run it.
    """
    if version.task != "text-generation":
        classifier_required(version, "Bias reports")
    actor.require(Cap.REPORT_CREATE, "run bias reports")
    labels = list(version.labels)
    if version.task == "text-generation":
        checked = generative_check(actor=actor, dataset=dataset, upload=upload, upload_name=upload_name,
                                   probe=probe or ProbeOptions())
        kind = ReportKind.PAIRS if checked.params["probe"] == "pairs" else ReportKind.PROBES
    elif version.task == "tabular-classification":
        kind = ReportKind.TABULAR
        favourable = favourable_label or (labels[-1] if labels else "")
        if dataset == "demo-adult":
            checked = datasets.demo_adult(schema=version.input_schema, labels=labels)
        elif dataset == "upload":
            if upload is None:
                raise InvalidDataset(gettext('Upload an evaluation CSV (or choose a demo dataset).'))
            checked = datasets.tabular_check(
                datasets.read_limited(upload), name=upload_name or "upload.csv", schema=version.input_schema,
                labels=labels, label_column=label_column or "label", sensitive_columns=sensitive_columns or [],
                favourable_label=favourable,
            )
        else:
            raise InvalidDataset(gettext("Unknown dataset %(dataset)r for a tabular model; use 'upload' or 'demo-adult'.") % {"dataset": dataset})
    elif version.task == "text-classification":
        kind = ReportKind.TEXT
        score = score_label or (labels[0] if labels else "")
        if dataset == "demo-identity":
            checked = datasets.demo_identity(labels=labels, score_label=score)
        elif dataset == "upload":
            if upload is None:
                raise InvalidDataset(gettext('Upload a templates CSV (or choose the demo identity templates).'))
            checked = datasets.text_check(datasets.read_limited(upload), name=upload_name or "templates.csv",
                                          terms=terms or [], labels=labels, score_label=score)
        else:
            raise InvalidDataset(gettext("Unknown dataset %(dataset)r for a text model; use 'upload' or 'demo-identity'.") % {"dataset": dataset})
    else:
        raise InvalidDataset(gettext('Bias reports are not available for %(task)s models.') % {"task": version.task})
    policy = policy_for(actor.organization)
    params = {**checked.params, "dataset": dataset, "min_group_size": policy.min_group_size,
              "bootstrap_resamples": policy.bootstrap_resamples, "thresholds": policy.thresholds}
    queue = generation_queue() if version.task == "text-generation" else serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No %(value)s worker is running; the report was not created.') % {"value": 'generation' if version.task == 'text-generation' else 'inference'})
    return bias_report_store(actor=actor, version=version, kind=kind, name=checked.name, sha256=checked.sha256,
                             content=json.dumps(checked.content).encode(), params=params, rows=checked.rows,
                             queue=queue)


def bias_report_store(*, actor: Actor, version: ModelVersion, kind: str, name: str, sha256: str, content: bytes,
                      params: dict[str, Any], rows: int, queue: str, audit_extra: dict[str, Any] | None = None) -> BiasReport:
    """Stores a checked dataset and the report's row (numbered per version), audits it and queues it on commit."""
    with stored_input(f"bias/{version.model.organization_id}/{uuid.uuid4().hex}.json", content) as stored, \
            transaction.atomic():
        for_update(ModelVersion.objects.filter(pk=version.pk)).first()  # numbers in order
        number = (BiasReport.objects.filter(model_version=version).aggregate(n=Max("number"))["n"] or 0) + 1
        report = BiasReport.objects.create(
            organization_id=version.model.organization_id, model_version=version, number=number, kind=kind,
            dataset_name=name, dataset_sha256=sha256, dataset_path=stored, params=params, rows_total=rows,
            created_by=actor.user,
        )
        audit_record(
            action="bias_report.requested", actor=actor.audit_actor, organization_id=version.model.organization_id,
            target_type="fairness.BiasReport", target_id=report.pk,
            payload={"model": version.model.name, "version": version.version, "report": number, "kind": kind,
                     "dataset": name, "dataset_sha256": sha256, "rows": rows, **(audit_extra or {})},
        )
        BIAS_REPORTS.send_on_commit(report.pk, queue=queue)
    return report


# ---------------------------------------------------------------- running it (worker)

class _Progress:
    """Writes progress at most every half second (a report's rows are many, the writes few)."""

    def __init__(self, report_id: int) -> None:
        self.report_id = report_id
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if now - self.last >= 0.5 or done == total:
            self.last = now
            job_beat(BiasReport, self.report_id, rows_done=done)


def bias_report_run(*, report_id: int) -> None:
    """Predicts the dataset with the model, computes the report, stores it (the task's body)."""
    import numpy as np
    import pandas as pd

    from inference.services.prediction_runs import rows_predict_proba

    if not job_claim(BiasReport, report_id, rows_done=0):
        return  # redelivered or already settled
    report = BiasReport.objects.select_related("model_version__model").get(pk=report_id)
    version = report.model_version
    with default_storage.open(report.dataset_path, "rb") as handle:
        content = json.loads(handle.read())
    params = report.params
    rules = metrics.thresholds_check(params.get("thresholds") or {})
    progress = _Progress(report_id)
    labels = list(version.labels)
    if report.kind in (ReportKind.PROBES, ReportKind.PAIRS):
        result = generative_report_run(report, content, rules, progress)
    elif report.kind == ReportKind.TABULAR:
        proba = rows_predict_proba(version=version, rows=content["rows"], progress=progress)
        favourable = labels.index(params["favourable_label"])
        score = proba[:, favourable]
        predicted = proba.argmax(axis=1) == favourable
        frame = pd.DataFrame(content["sensitive"])
        result = metrics.tabular_report(
            frame, np.array(content["y_true"]), predicted, score, sensitive=params["sensitive_columns"],
            min_group_size=params["min_group_size"], resamples=params["bootstrap_resamples"], seed=report.pk,
            thresholds=rules,
        )
        result["favourable_label"] = params["favourable_label"]
    else:
        templates, terms = content["templates"], content["terms"]
        sentences = [t.replace(datasets.SLOT, term) for t in templates for term in terms]
        proba = rows_predict_proba(version=version, rows=sentences, chunk=64, progress=progress)
        scores = proba[:, labels.index(params["score_label"])].reshape(len(templates), len(terms))
        result = metrics.identity_report(
            scores, terms, labels=content["labels"], resamples=params["bootstrap_resamples"], seed=report.pk,
            thresholds=rules, templates=templates, slot=datasets.SLOT,
        )
        result["score_label"] = params["score_label"]
        if result["direction"]:
            others = [label for label in labels if label != params["score_label"]]
            result["direction"]["message"] += f" ({params['score_label']} was chosen; the model's other label: " \
                                               f"{', '.join(others)}.)"
        result["examples"] = templates[:3]
    result["model"] = {"name": version.model.name, "version": version.version, "labels": labels,
                       "artifact_sha256": version.artifact_sha256}
    result["dataset"] = {"name": report.dataset_name, "sha256": report.dataset_sha256, "rows": report.rows_total}
    with transaction.atomic():
        if job_finish(BiasReport, report_id, result=result, verdict=result["verdict"], rows_done=report.rows_total):
            audit_record(
                action="bias_report.completed", actor=WORKER, organization_id=report.organization_id,
                target_type="fairness.BiasReport", target_id=report_id,
                payload={"model": version.model.name, "version": version.version, "report": report.number,
                         "verdict": result["verdict"], "dataset_sha256": report.dataset_sha256,
                         "rows": report.rows_total},
            )


BIAS_REPORTS = register(JobKind(
    name="bias report", model=BiasReport, target_type="fairness.BiasReport",
    task="audit.fairness.tasks.bias_report_run_task", failed_action="bias_report.failed", actor=lambda job: WORKER,
    what="Bias report", reset={"rows_done": 0},
))

# ---------------------------------------------------------------- evidence for the registry

def _headline(report: BiasReport) -> str:
    result = report.result or {}
    worst_line = ""
    if report.kind == ReportKind.TABULAR:
        for axis in result.get("axes", []):
            for name, d in axis.get("disparities", {}).items():
                if d["verdict"] == report.verdict and d["value"] is not None:
                    worst_line = gettext("%(metric)s %(value)s (%(axis)s)") % {
                        "metric": metrics.metric_said(name), "value": f"{d['value']:.2f}", "axis": axis["axis"]}
                    break
            if worst_line:
                break
    elif report.kind == ReportKind.PROBES:
        for name, d in result.get("disparities", {}).items():
            if d["verdict"] == report.verdict and d["value"] is not None:
                worst_line = gettext("%(metric)s %(value)s (%(highest)s vs %(lowest)s)") % {
                    "metric": metrics.metric_said(name), "value": f"{d['value']:.2f}", "highest": d["highest"],
                    "lowest": d["lowest"]}
                break
    else:
        for name, check in result.get("checks", {}).items():
            if check["verdict"] == report.verdict and check["value"] is not None:
                worst_line = f"{metrics.metric_said(name)} {check['value']:.2f}"
                break
    verdict = str(metrics.VERDICT_WORDS.get(report.verdict, report.verdict))
    return gettext("%(verdict)s: %(worst)s") % {"verdict": verdict, "worst": worst_line} if worst_line else verdict



def _requirement_unmet(latest: BiasReport, *, several_kinds: bool) -> str:
    said = {"number": latest.number, "verdict": metrics.VERDICT_WORDS.get(latest.verdict, latest.verdict),
            "kind": latest.get_kind_display().lower()}
    if several_kinds:
        return gettext("This organisation requires a passing bias report before approval; the latest %(kind)s report "
                       "(#%(number)s) is %(verdict)s.") % said
    return gettext("This organisation requires a passing bias report before approval; the latest (#%(number)s) is "
                   "%(verdict)s.") % said


def bias_evidence(version: ModelVersion) -> Evidence | None:
    """The latest finished bias report of each kind a version has (a generative model may have probes
    and pairs), the worst first, and whether the policy lets the version be approved: every kind's
    latest must pass."""
    if version.task == "text-embedding":
        return None  # no bias report measures a vector model: the gate must not wait on one
    done = BiasReport.objects.filter(model_version=version, status=JobStatus.DONE).order_by("-number")
    latest_of_kind = [done.filter(kind=kind).first() for kind in set(done.values_list("kind", flat=True))]
    latest = max((r for r in latest_of_kind if r is not None),
                 key=lambda r: (metrics.VERDICT_ORDER.get(r.verdict, 1), r.number), default=None)
    policy = FairnessPolicy.objects.filter(organization_id=version.model.organization_id).first()
    required = bool(policy and policy.require_passing_report)
    if latest is None:
        return Evidence(
            title=gettext("Bias report"), summary=gettext("none yet"),
            url=reverse("fairness-version", args=[version.model.name, version.version]), blocks_approval=required,
            reason=gettext("This organisation requires a passing bias report before approval; this version has none.")
            if required else "",
            details={"required": required},
        )
    blocks = required and latest.verdict != "pass"
    return Evidence(
        title=gettext("Bias report"), summary=gettext("#%(number)s on %(dataset)s: %(headline)s") % {
            "number": latest.number, "dataset": latest.dataset_name, "headline": _headline(latest)},
        verdict=latest.verdict, url=reverse("fairness-report", args=[latest.pk]), blocks_approval=blocks,
        reason=_requirement_unmet(latest, several_kinds=len(latest_of_kind) > 1) if blocks else "",
        details={"report": latest.pk, "required": required},
    )
