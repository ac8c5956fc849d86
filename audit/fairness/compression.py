"""What compression did to a classifier's disparities.

When a compressed version is registered (inference.services.compressions.version_compressed), the
source's latest finished classifier bias report of each kind is repeated on it: the same stored
dataset and parameters, so the two reports measure the same rows. The evidence compares each
disparity of the two and holds approval when any moved more than the organisation's compression
policy accepts (`max_disparity_change`), or while the repeat is not finished.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.translation import gettext

from audit.fairness.models import BiasReport, ReportKind
from inference.evidence import Evidence
from inference.models import Compression, ModelVersion
from inference.services.compressions import compression_policy_for
from portal.accounts.actor import Actor
from portal.jobs import JobStatus
from portal.platform.workers import serving_queue

logger = logging.getLogger("steward.fairness")
CLASSIFIER_KINDS = (ReportKind.TEXT, ReportKind.TABULAR)


def disparities(report: BiasReport) -> dict[str, float]:
    """Every disparity value a classifier report computed, by a name that says where it is."""
    result = report.result or {}
    found: dict[str, float] = {}
    if report.kind == ReportKind.TABULAR:
        for axis in result.get("axes", []):
            for name, d in axis.get("disparities", {}).items():
                if d.get("value") is not None:
                    found[f"{name} ({axis['axis']})"] = float(d["value"])
    else:
        for name, check in result.get("checks", {}).items():
            if check.get("value") is not None:
                found[name] = float(check["value"])
    return found


def bias_report_repeat(*, report: BiasReport, version: ModelVersion, actor: Actor) -> BiasReport | None:
    """The same report (dataset, parameters) queued for `version`; None when no worker runs."""
    from audit.fairness.services import bias_report_store

    queue = serving_queue()
    if queue is None:
        logger.warning("no inference worker: the bias report %s was not repeated on %s", report.pk, version)
        return None
    with default_storage.open(report.dataset_path, "rb") as handle:
        content = handle.read()
    return bias_report_store(
        actor=actor, version=version, kind=report.kind, name=report.dataset_name, sha256=report.dataset_sha256,
        content=content, params={**report.params, "repeats": report.pk}, rows=report.rows_total, queue=queue,
        audit_extra={"repeats": {"version": report.model_version.version, "report": report.number}})


def _latest_done(version: ModelVersion, kind: str) -> BiasReport | None:
    return (BiasReport.objects.filter(model_version=version, kind=kind, status=JobStatus.DONE)
            .order_by("-number").first())


def on_version_compressed(sender: Any, *, compression: Compression, version: ModelVersion, actor: Actor,
                          **kwargs: Any) -> None:
    source = compression.source_version
    for kind in CLASSIFIER_KINDS:
        latest = _latest_done(source, kind)
        if latest is not None:
            bias_report_repeat(report=latest, version=version, actor=actor)


def compression_bias_evidence(version: ModelVersion) -> Evidence | None:
    """For a compressed classifier whose source has a bias report: how far each disparity moved."""
    measured = (version.metrics or {}).get("compression")
    if not measured or version.task == "text-generation":
        return None
    source = ModelVersion.objects.filter(model=version.model, version=measured["source_version"]).first()
    if source is None:
        return None
    policy = compression_policy_for(version.model.organization)
    compared: list[dict[str, Any]] = []
    waiting = []
    for kind in CLASSIFIER_KINDS:
        before = _latest_done(source, kind)
        if before is None:
            continue
        after = (BiasReport.objects.filter(model_version=version, kind=kind, dataset_sha256=before.dataset_sha256,
                                           status=JobStatus.DONE).order_by("-number").first())
        if after is None:
            waiting.append(f"#{before.number} ({before.dataset_name})")
            continue
        old, new = disparities(before), disparities(after)
        for name in sorted(set(old) & set(new)):
            compared.append({"metric": name, "source": old[name], "compressed": new[name],
                             "change": round(new[name] - old[name], 6), "source_report": before.number,
                             "report": after.number})
    if not compared and not waiting:
        return None
    worst = max(compared, key=lambda c: abs(c["change"]), default=None)
    beyond = worst is not None and abs(worst["change"]) > policy.max_disparity_change
    url = reverse("fairness-version", args=[version.model.name, version.version])
    if waiting:
        return Evidence(
            title=gettext("Compression: disparities"),
            summary=gettext("the source's bias report %(reports)s is being repeated on this version") % {
                "reports": ", ".join(waiting)}, verdict="warn", url=url, blocks_approval=True,
            reason=gettext("The source's bias report has not yet been repeated on this compressed version, so what "
                           "compression did to its disparities is not known."),
            details={"compared": compared})
    assert worst is not None
    summary = gettext("the largest change of a disparity is %(change)s (%(metric)s: %(before)s to %(after)s); the "
                      "policy accepts %(limit)s") % {
        "change": f"{worst['change']:+.4f}", "metric": worst["metric"], "before": f"{worst['source']:.4f}",
        "after": f"{worst['compressed']:.4f}", "limit": f"{policy.max_disparity_change:g}"}
    return Evidence(
        title=gettext("Compression: disparities"), summary=summary, verdict="fail" if beyond else "pass", url=url,
        blocks_approval=beyond,
        reason=gettext("Compression moved %(metric)s by %(change)s, more than the %(limit)s this organisation's "
                       "compression policy accepts.") % {
            "metric": worst["metric"], "change": f"{worst['change']:+.4f}",
            "limit": f"{policy.max_disparity_change:g}"} if beyond else "",
        details={"compared": compared})
