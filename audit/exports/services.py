"""Compliance exports: requested on the web, assembled on a worker, signed and anchored in the log.

An export gathers the evidence about one model version (audit.exports.document), draws it as a PDF,
a JSON document and CSV tables, and seals them into an evidence bundle (audit.log.exports): the
log records the bundle's file list, and the bundle carries that entry's inclusion proof and the
log's signature, so that `python -m audit.log.verify` checks it offline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext

from audit.exports import document as evidence_document
from audit.exports.exceptions import ExportNotFinished, InvalidExport
from audit.exports.models import ComplianceExport
from audit.log.services import AuditActor, audit_record
from inference.evidence import Evidence
from inference.exceptions import WorkerUnavailable
from inference.models import ModelVersion
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import JobKind, JobStatus, job_beat, job_claim, job_finish, register
from portal.platform.locks import for_update
from portal.platform.workers import worker_alive

logger = logging.getLogger("steward.exports")
WORKER = AuditActor.system("export worker")
QUEUE = "default"  # no model to load: any worker with the default queue assembles exports
MAX_PERIOD_DAYS = 366
DEFAULT_PERIOD_DAYS = 30
EXCERPT_PREDICTIONS = 100  # prediction entries in the excerpt (the latest of the period); all others are counted
STAGES = ["gathering evidence", "writing JSON and CSV", "typesetting the PDF", "signing and anchoring",
          "storing the bundle"]


def default_period() -> tuple[date, date]:
    end = timezone.localdate()
    return end - timedelta(days=DEFAULT_PERIOD_DAYS - 1), end


def export_create(*, actor: Actor, version: ModelVersion, period_start: date | None = None,
                  period_end: date | None = None, language: str | None = None) -> ComplianceExport:
    """Checks the request and queues the export on a worker. Its PDF is written in `language` (one
    the portal offers), by default the request's own.

    Raises:
        InvalidExport (400): a period that is reversed, in the future, or longer than a year; a language
            the portal does not offer.
        WorkerUnavailable (503): no worker to assemble it; nothing is stored.
    """
    actor.require(Cap.EXPORT_CREATE, "generate compliance exports")
    today = timezone.localdate()
    end = period_end or today
    start = period_start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if start > end:
        raise InvalidExport(gettext('The period starts (%(start)s) after it ends (%(end)s).') % {"start": start, "end": end})
    if end > today:
        raise InvalidExport(gettext('The period ends in the future (%(end)s); the latest possible end is today (%(today)s).') % {"end": end, "today": today})
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidExport(gettext('The period is %(value)s days; at most %(MAX_PERIOD_DAYS)s are allowed.') % {"value": (end - start).days + 1, "MAX_PERIOD_DAYS": MAX_PERIOD_DAYS})
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    if language not in dict(settings.LANGUAGES):
        raise InvalidExport(translation.gettext("The report cannot be written in %(language)r: this portal offers "
                                                "%(offered)s.") % {"language": language,
                                                                   "offered": ", ".join(dict(settings.LANGUAGES))})
    if not worker_alive(queue=QUEUE):
        raise WorkerUnavailable(gettext('No worker is running to assemble the export; it was not created.'))
    with transaction.atomic():
        for_update(ModelVersion.objects.filter(pk=version.pk)).first()  # numbers in order
        number = (ComplianceExport.objects.filter(model_version=version).aggregate(n=Max("number"))["n"] or 0) + 1
        export = ComplianceExport.objects.create(
            organization=actor.organization, model_version=version, number=number, period_start=start,
            period_end=end, steps_total=len(STAGES), created_by=actor.user, language=language,
        )
        audit_record(
            action="compliance_export.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="exports.ComplianceExport", target_id=export.pk,
            payload={"model": version.model.name, "version": version.version, "export": number,
                     "period": [start.isoformat(), end.isoformat()], "language": language},
        )
        EXPORTS.send_on_commit(export.pk)
    return export


def _stage(export_id: int, step: int) -> None:
    job_beat(ComplianceExport, export_id, stage=STAGES[step], steps_done=step)


def export_run(*, export_id: int) -> None:
    """Assembles, signs and stores the bundle (the task's body); a redelivered task is a no-op."""
    from audit.exports import pdf, tables
    from audit.log.exports import evidence_bundle_create
    from audit.log.selectors import entries_for_targets

    if not job_claim(ComplianceExport, export_id, steps_done=0, stage=STAGES[0]):
        return
    export = ComplianceExport.objects.select_related("model_version__model__organization", "created_by").get(
        pk=export_id)
    version = export.model_version
    since, until = evidence_document.period_bounds(export.period_start, export.period_end)
    exports = list(ComplianceExport.objects.filter(model_version=version).values_list("pk", flat=True))
    entries = entries_for_targets(
        organization_id=export.organization_id,
        targets=evidence_document.audit_targets(version, since=since, until=until, export_ids=exports))
    document = evidence_document.build(
        version=version, number=export.number, period=(export.period_start, export.period_end),
        generated_by=export.created_by.username, excerpt=evidence_document.excerpt_rows(entries))
    _validate(document)

    _stage(export_id, 1)
    stem = f"{version.model.name}-v{version.version}-export-{export.number}"
    files = {
        "evidence.json": json.dumps(document, indent=1, ensure_ascii=False).encode() + b"\n",
        "schema/compliance-export.schema.json": evidence_document.SCHEMA_PATH.read_bytes(),
        **tables.tables(document),
    }
    _stage(export_id, 2)
    with translation.override(export.language):  # the report's words; the evidence is the same in every language
        files["report.pdf"] = pdf.render(document)

    _stage(export_id, 3)
    bundle, manifest = evidence_bundle_create(
        files=files, title=f"Steward compliance export: {version.model.name} version {version.version}, #{export.number}",
        subject={"organization": version.model.organization.slug, "model": version.model.name,
                 "version": version.version, "export": export.number},
        action="compliance_export.generated", actor=WORKER, organization_id=export.organization_id,
        target_type="exports.ComplianceExport", target_id=export.pk,
        payload={"model": version.model.name, "version": version.version, "export": export.number,
                 "issues": len(document["issues"])},
        excerpt=entries,
    )

    _stage(export_id, 4)
    path = default_storage.save(f"exports/{export.organization_id}/{stem}-{uuid.uuid4().hex[:8]}.zip",
                                ContentFile(bundle))
    anchor = manifest["anchor"]["proof"]
    updated = job_finish(
        ComplianceExport, export_id, steps_done=len(STAGES), stage="done", bundle_path=path,
        bundle_sha256=hashlib.sha256(bundle).hexdigest(), bundle_bytes=len(bundle), files=manifest["files"],
        issues=document["issues"], mapping=document["regulatory_mapping"],
        audit_index=anchor["index"], audit_leaf_hash=anchor["leaf_hash"])
    if not updated:  # failed meanwhile (the sweeper gave up on it): keep no orphan file
        default_storage.delete(path)


def _validate(document: dict[str, Any]) -> None:
    """The document must follow its published schema; a failure is a bug, reported as the job's error."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(evidence_document.schema(),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        raise ValueError(f"the export document does not follow its schema at {where}: {first.message}")


EXPORTS = register(JobKind(
    name="compliance export", model=ComplianceExport, target_type="exports.ComplianceExport",
    task="audit.exports.tasks.export_run_task", failed_action="compliance_export.failed", actor=lambda job: WORKER,
    what="Compliance export", reset={"steps_done": 0, "stage": ""}, queue=QUEUE,
))


def export_bundle(*, export: ComplianceExport) -> bytes:
    if export.status != JobStatus.DONE:
        raise ExportNotFinished(gettext('The export is %(status)s; it can be downloaded once it is done.') % {"status": export.status})
    with default_storage.open(export.bundle_path, "rb") as handle:
        return handle.read()


def export_file(*, export: ComplianceExport, name: str) -> bytes:
    """One file of a finished bundle, by its name in the manifest."""
    import io
    import zipfile

    if name not in {f["name"] for f in export.files} | {"manifest.json", "manifest.sig"}:
        raise InvalidExport(gettext('The bundle has no file %(name)r.') % {"name": name}, details={"files": [f["name"] for f in export.files]})
    with zipfile.ZipFile(io.BytesIO(export_bundle(export=export))) as bundle:
        return bundle.read(name)


def export_evidence(version: ModelVersion) -> Evidence | None:
    """The latest finished export of a version, for its model card (never blocks approval)."""
    latest = (ComplianceExport.objects.filter(model_version=version, status=JobStatus.DONE)
              .order_by("-number").first())
    url = reverse("exports-version", args=[version.model.name, version.version])
    if latest is None:
        return Evidence(title=gettext("Compliance export"), summary=gettext("none yet"), url=url)
    high = sum(1 for issue in latest.issues if issue["severity"] == "high")
    return Evidence(
        title=gettext("Compliance export"),
        summary=gettext("#%(number)s of %(day)s: %(issues)s open issue(s), %(high)s high") % {
            "number": latest.number, "day": formats.date_format(latest.finished_at, "DATE_FORMAT") if latest.finished_at else "", "issues": len(latest.issues), "high": high},
        verdict="warn" if high else "", url=reverse("export-detail", args=[latest.pk]),
        details={"export": latest.pk},
    )
