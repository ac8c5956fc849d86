"""Global explanations: mean |SHAP| over an evaluation sample, computed as a job on a worker.

The sample is explained row by row with the same explainer as local explanations (so each row's
attributions are additive to its output, residual checked), and aggregated by
`inference.ml.explain.global_ranking`. The job writes its progress as it goes, is numbered per
version, is requeued if its worker stops beating, and leaves entries in the audit log.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.evidence import Evidence
from inference.exceptions import InvalidInput, NotExplainable, WorkerUnavailable, classifier_required
from inference.ml.explain import Explained, explanation_seed, global_ranking
from inference.models import GlobalExplanation, GlobalSource, ModelVersion, Prediction, Task
from inference.services.explanations import budget_check
from inference.services.jobs import rows_parse, rows_validate
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobKind, JobStatus, job_beat, job_claim, job_finish, register, stored_input
from portal.platform.locks import for_update
from portal.platform.workers import serving_queue

WORKER = AuditActor.system("inference worker")
DATA = Path(settings.BASE_DIR) / "data"
DEFAULT_SAMPLE = {Task.TEXT: 40, Task.TABULAR: 200}
DEFAULT_EVALS = {Task.TEXT: 200, Task.TABULAR: 500}


def _demo_rows(version: ModelVersion) -> tuple[list[Any], str, str]:
    """The shipped evaluation set that fits the version: SST-2 dev (text) or the Adult test set (tabular)."""
    from inference.ml.training import read_adult, read_sst2

    if version.task == Task.TEXT:
        path = DATA / "sst2" / "dev.tsv"
        return [text for text, _ in read_sst2(path)], "SST-2 dev sentences", hashlib.sha256(path.read_bytes()).hexdigest()
    path = DATA / "adult" / "adult.test"
    names = [f["name"] for f in version.input_schema.get("features", [])]
    rows = read_adult(path)
    if not names or not all(name in rows[0] for name in names):
        raise InvalidInput(gettext('The demo evaluation set (UCI Adult) does not have the features of %(version)s; upload one.') % {"version": version})
    return [{name: row[name] for name in names} for row in rows], "UCI Adult test set", \
        hashlib.sha256(path.read_bytes()).hexdigest()


def _served_rows(version: ModelVersion, limit: int) -> list[Any]:
    rows: list[Any] = []
    for inputs in (Prediction.objects.filter(model_version=version, status=JobStatus.DONE)
                   .order_by("-created_at").values_list("inputs", flat=True).iterator()):
        rows.extend((inputs or {}).get("rows", []))
        if len(rows) >= limit:
            break
    return rows[:limit]


def global_explanation_create(
    *, actor: Actor, version: ModelVersion, source: str = GlobalSource.UPLOAD, upload: BinaryIO | None = None,
    upload_name: str = "", sample_size: int | None = None, max_evals: int | None = None,
) -> GlobalExplanation:
    """Draws the sample, stores it, queues the job.

    Raises:
        InvalidInput (400): an unknown source, an empty or invalid sample, a size or budget out of range.
        NotExplainable (409): a tabular version without a background sample.
        WorkerUnavailable (503). Nothing is stored on any of them.
    """
    actor.require(Cap.REPORT_CREATE, "compute global explanations")
    classifier_required(version, "Global explanations")
    task = Task(version.task)
    size = DEFAULT_SAMPLE[task] if sample_size is None else sample_size
    if not 1 <= size <= settings.GLOBAL_EXPLAIN_MAX_ROWS:
        raise InvalidInput(gettext('sample_size must be between 1 and %(GLOBAL_EXPLAIN_MAX_ROWS)s; got %(size)s.') % {"GLOBAL_EXPLAIN_MAX_ROWS": settings.GLOBAL_EXPLAIN_MAX_ROWS, "size": size})
    budget = budget_check(version, DEFAULT_EVALS[task] if max_evals is None else max_evals)
    if task == Task.TABULAR and version.background_rows == 0:
        raise NotExplainable(gettext('%(version)s has no background sample (background.jsonl in its archive), which SHAP needs to explain a tabular model; register a version with one.') % {"version": version})
    if source == GlobalSource.UPLOAD:
        if upload is None:
            raise InvalidInput(gettext('Upload an evaluation file (CSV or JSON lines), or choose another source.'))
        rows, _, digest = rows_parse(upload, upload_name or "sample.csv", version)
        name = (upload_name or "upload")[:200]
    elif source == GlobalSource.PREDICTIONS:
        rows = _served_rows(version, size)
        if not rows:
            raise InvalidInput(gettext('%(version)s has served no prediction whose inputs are kept; upload a sample instead.') % {"version": version})
        name = f"latest {len(rows)} rows served by v{version.version}"
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    elif source == GlobalSource.DEMO:
        rows, name, digest = _demo_rows(version)
    else:
        raise InvalidInput(gettext('Unknown source %(source)r; use one of %(join)s.') % {"source": source, "join": ', '.join(GlobalSource.values)})
    clean = rows_validate(version, rows)
    if task == Task.TEXT:
        longest = settings.EXPLAIN_MAX_TOKENS
        clean = [text for text in clean if len(str(text).split()) <= longest]
        if not clean:
            raise InvalidInput(gettext('Every text of the sample is longer than %(longest)s words, the most that is explained.') % {"longest": longest})
    if len(clean) > size:  # a seeded draw: the same sample for the same data and size
        clean = random.Random(0).sample(clean, size)  # noqa: S311  (sampling, not secrets)
    queue = serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No inference worker is running; the global explanation was not created.'))
    with stored_input(f"explanations/{actor.organization.pk}/{uuid.uuid4().hex}.json", json.dumps(clean).encode()) as stored, transaction.atomic():
        for_update(ModelVersion.objects.filter(pk=version.pk)).first()  # numbers in order
        number = (GlobalExplanation.objects.filter(model_version=version)
                  .aggregate(n=Max("number"))["n"] or 0) + 1
        job = GlobalExplanation.objects.create(
            organization=actor.organization, model_version=version, number=number, source=source,
            dataset_name=name, dataset_sha256=digest, dataset_path=stored, max_evals=budget,
            rows_total=len(clean), created_by=actor.user,
        )
        audit_record(
            action="global_explanation.requested", actor=actor.audit_actor,
            organization_id=actor.organization.pk, target_type="inference.GlobalExplanation", target_id=job.pk,
            payload={"model": version.model.name, "version": version.version, "number": number, "source": source,
                     "dataset": name, "dataset_sha256": digest, "rows": len(clean), "max_evals": budget},
        )
        GLOBAL_EXPLANATIONS.send_on_commit(job.pk, queue=queue)
    return job


def global_explanation_run(*, job_id: int) -> None:
    """Explains every row of the sample and aggregates (the task's body); a redelivered task is a no-op."""
    if not job_claim(GlobalExplanation, job_id, rows_done=0):
        return
    job = GlobalExplanation.objects.select_related("model_version__model").get(pk=job_id)
    with default_storage.open(job.dataset_path, "rb") as handle:
        rows = json.loads(handle.read())
    from inference.runtime import explainer_for

    explainer, device = explainer_for(job.model_version)
    explained: list[Explained] = []
    last = time.monotonic()
    for number, row in enumerate(rows, start=1):
        seed = explanation_seed(job.dataset_sha256, number, job.max_evals, job.model_version_id)
        explained.append(explainer.explain(row, max_evals=job.max_evals, seed=seed))
        if time.monotonic() - last >= 0.5 or number == len(rows):
            last = time.monotonic()
            job_beat(GlobalExplanation, job_id, rows_done=number)
    result = global_ranking(explained)
    result["max_evals"] = job.max_evals
    version = job.model_version
    with transaction.atomic():
        if job_finish(GlobalExplanation, job_id, result=result, rows_done=len(rows), device=device):
            audit_record(
                action="global_explanation.completed", actor=WORKER, organization_id=job.organization_id,
                target_type="inference.GlobalExplanation", target_id=job_id,
                payload={"model": version.model.name, "version": version.version, "number": job.number,
                         "rows": len(rows), "dataset_sha256": job.dataset_sha256,
                         "max_residual": result["max_residual"],
                         "top": [item["name"] for item in result["ranking"][:10]]},
            )


GLOBAL_EXPLANATIONS = register(JobKind(
    name="global explanation", model=GlobalExplanation, target_type="inference.GlobalExplanation",
    task="inference.tasks.global_explanation_run_task", failed_action="global_explanation.failed",
    actor=lambda job: WORKER, what="Global explanation",
    public_error=("The global explanation could not be computed on the worker. Try again; if it fails again, try "
                  "a smaller sample or budget, or ask an admin to look at the worker's log."),
))


def explanation_evidence(version: ModelVersion) -> Evidence | None:
    """The latest global explanation of a version, for its card (it never blocks approval)."""
    latest = (GlobalExplanation.objects.filter(model_version=version, status=JobStatus.DONE)
              .order_by("-number").first())
    if latest is None:
        return Evidence(title=gettext("Global explanation"), summary=gettext("none yet"),
                        url=reverse("model-detail", args=[version.model.name]) + f"?v={version.version}#explanations")
    top = ", ".join(f"'{item['name']}'" for item in (latest.result or {}).get("ranking", [])[:5])
    return Evidence(
        title=gettext("Global explanation"),
        summary=gettext("#%(number)s over %(rows)s rows of %(dataset)s: most influential %(top)s") % {
            "number": latest.number, "rows": latest.rows_total, "dataset": latest.dataset_name, "top": top},
        url=reverse("global-explanation", args=[latest.pk]), details={"global_explanation": latest.pk},
    )
