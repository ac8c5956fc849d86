"""The evidence about a model version, gathered from live data into one JSON document.

Reads inference, fairness and the log only through their selectors and response builders
(STYLE.md C1). The document follows schema/compliance-export.schema.json (published at
/api/v1/exports/schema); the PDF and the CSV tables are drawn from it and nothing else, so the
three formats never disagree.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from audit.exports import mapping
from audit.fairness import selectors as fairness_selectors
from audit.fairness.exports import report_document
from audit.log import selectors as log_selectors
from inference import selectors as inference_selectors
from inference.models import ModelVersion
from inference.outputs import (
    CanaryAuditOutput,
    ExplanationOutput,
    FineTuneJobOutput,
    GlobalExplanationOutput,
    TrainingDatasetOutput,
)
from inference.services.registry import CARD_FIELDS, CARD_LABELS, CARD_REQUIRED_TO_SUBMIT

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "compliance-export.schema.json"
SCHEMA_ID = "https://steward.invalid/schemas/compliance-export/1.json"
LOCAL_SAMPLE = 5  # local explanations shown in full
RESIDUAL_LIMIT = 1e-6
ERROR_RATE_LIMIT = 0.01


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end + 1 day 00:00) in the portal's time zone."""
    zone = timezone.get_current_timezone()
    return (datetime.combine(start, time.min, tzinfo=zone),
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone))


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def audit_targets(version: ModelVersion, *, since: datetime, until: datetime,
                  export_ids: list[int]) -> list[tuple[str, list[str]]]:
    """Every target the log records about a version under, this app's and the others'."""
    targets = inference_selectors.version_audit_targets(version=version, since=since, until=until)
    reports = fairness_selectors.report_ids(version=version)
    if reports:
        targets.append(("fairness.BiasReport", [str(pk) for pk in reports]))
    if export_ids:
        targets.append(("exports.ComplianceExport", [str(pk) for pk in export_ids]))
    return targets


def build(*, version: ModelVersion, number: int, period: tuple[date, date], generated_by: str,
          excerpt: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole document. `excerpt` is the audit entries (as summarised rows) the bundle carries.

    Its sentences are in English (gettext's source, no language active), whoever builds it: the evidence
    is the same in every language; the PDF says it in the export's."""
    with translation.override(None):
        return _build(version=version, number=number, period=period, generated_by=generated_by, excerpt=excerpt)


def _build(*, version: ModelVersion, number: int, period: tuple[date, date], generated_by: str,
           excerpt: list[dict[str, Any]]) -> dict[str, Any]:
    model = version.model
    since, until = period_bounds(*period)
    card = {name: (version.card or {}).get(name, "") for name in CARD_FIELDS}
    document: dict[str, Any] = {
        "$schema": SCHEMA_ID,
        "schema_version": "1.0",
        "export": {
            "number": number, "generated_at": timezone.now().isoformat(), "generated_by": generated_by,
            "organization": {"name": model.organization.name, "slug": model.organization.slug},
            "period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
        },
        "model": {
            "name": model.name, "description": model.description, "version": version.version,
            "task": version.task, "framework": version.framework, "labels": list(version.labels),
            "input_schema": version.input_schema or {}, "status": version.status,
            "aliases": inference_selectors.version_aliases(version=version),
            "artifact": {"sha256": version.artifact_sha256, "bytes": version.artifact_size},
            "registered_by": version.created_by.username, "registered_at": _when(version.created_at),
        },
        "model_card": card,
        "lifecycle": [
            {"from": t.from_status, "to": t.to_status, "actor": t.actor.username, "comment": t.comment,
             "at": _when(t.created_at)}
            for t in inference_selectors.version_history(version=version)
        ],
        "evaluation": {"metrics": flat_metrics(version.metrics or {}), "compression": _compression(version)},
        "bias_report": _bias(version),
        "explanations": _explanations(version),
        "privacy": _privacy(version),
        "generative": _generative(version, since=since, until=until),
        "serving": inference_selectors.version_serving_statistics(version=version, since=since, until=until),
        "audit": _audit(excerpt),
    }
    document["issues"] = issues(document)
    document["regulatory_mapping"] = mapping.evaluate(document)
    return document


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Metrics as one level of names and numbers (the schema's shape): a nested group's entries are
    named "group.name" (a demo's held-out counts per class), anything else that is not a number is text."""
    flat: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{name}."))
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            flat[f"{prefix}{name}"] = value
        else:
            flat[f"{prefix}{name}"] = json.dumps(value)
    return flat


GENERATED_SAMPLE = 10  # a generative report's completions or pairs in the export; its download has all


def _bias(version: ModelVersion, kind: str | None = None) -> dict[str, Any] | None:
    report = fairness_selectors.report_latest_done(version=version, kind=kind)
    if report is None:
        return None
    body = report_document(report)
    headline = body.get("report", {})
    result = dict(report.result or {})
    for listed in ("completions", "pairs"):
        if listed in result:
            result[f"{listed}_total"] = len(result[listed])
            result[listed] = result[listed][:GENERATED_SAMPLE]
    return {
        "number": report.number, "kind": report.kind, "verdict": report.verdict,
        "dataset": {"name": report.dataset_name, "sha256": report.dataset_sha256, "rows": report.rows_total},
        "created_by": headline.get("created_by"), "finished_at": _when(report.finished_at),
        "params": report.params, "result": result,
    }


def _explanations(version: ModelVersion) -> dict[str, Any]:
    latest = inference_selectors.version_global_explanation_latest(version=version)
    done = inference_selectors.version_explanations_done(version=version)
    sample = []
    for explanation in done[:LOCAL_SAMPLE]:
        body = dict(ExplanationOutput(explanation).data)
        body.pop("url", None)
        sample.append(body)
    residuals = [r for r in done.values_list("residual", flat=True) if r is not None]
    return {
        "global": _global(latest) if latest else None,
        "local_total": done.count(),
        "local_max_residual": max(residuals) if residuals else None,
        "local_sample": sample,
    }


def _global(job: Any) -> dict[str, Any]:
    body = dict(GlobalExplanationOutput(job).data)
    body.pop("url", None)
    return body


def _compression(version: ModelVersion) -> dict[str, Any] | None:
    """A compressed version's cost against its source, and what the organisation's policy says of it."""
    from inference.services import compressions

    measured = (version.metrics or {}).get("compression")
    if not measured:
        return None
    policy = compressions.compression_policy_for(version.model.organization)
    return {"source_version": measured["source_version"], "headline": compressions.headline(measured),
            "beyond_policy": compressions.limits_exceeded(measured, policy)}


def _privacy(version: ModelVersion) -> dict[str, Any] | None:
    job = inference_selectors.version_finetune_origin(version=version)
    if job is None and not version.privacy:
        return None
    found: dict[str, Any] = {"guarantee": dict(version.privacy or {}), "job": None, "dataset": None,
                             "canary_audit": None}
    if job is not None:
        found["job"] = dict(FineTuneJobOutput(job).data)
        found["dataset"] = dict(TrainingDatasetOutput(job.dataset).data)
    audit = inference_selectors.version_canary_audit(version=version)
    if audit is not None:
        found["canary_audit"] = dict(CanaryAuditOutput(audit).data)
    return found


# Art. 53(1)(a)-(b) and Annexes XI-XII: what the provider of a general-purpose model documents. Steward
# holds what a deployer has (the card, the weights' hash, the context, measured behaviour); the rest only
# the provider can give.
GPAI_PROVIDER_ONLY = [
    "the training process and the data used for training, testing and validation (Annex XI 1(2)(c)-(d))",
    "a summary of the content used for training, in the AI Office's template (Art. 53(1)(d))",
    "the policy to comply with EU copyright law, incl. text and data mining opt-outs (Art. 53(1)(c))",
    "the computational resources and the energy used to train the model (Annex XI 1(2)(d)-(e))",
    "for a model with systemic risk: its adversarial testing and risk mitigation (Art. 55)",
]


def _generative(version: ModelVersion, *, since: datetime, until: datetime) -> dict[str, Any] | None:
    if version.task != "text-generation":
        return None
    found = inference_selectors.version_guardrail_evidence(version=version, since=since, until=until)
    changes = []
    for entry in log_selectors.entries_for_targets(
            organization_id=version.model.organization_id,
            targets=[("inference.GuardrailPolicy", [str(pk) for pk in found["policy_ids"]])]):
        payload = entry.payload or {}  # None once erased (GDPR): the change is still listed
        if since <= entry.created_at < until and payload.get("model") in (None, version.model.name):
            changes.append({"index": entry.index, "at": _when(entry.created_at),
                            "actor": entry.actor_label or entry.actor_type, "action": entry.action,
                            "scope": payload.get("scope"), "model": payload.get("model"),
                            "revision": payload.get("revision"), "changed": sorted(payload.get("changed", {}))})
    card = version.card or {}
    present = [f"model card: {name.replace('_', ' ')}" for name in CARD_FIELDS if str(card.get(name, "")).strip()]
    present.append(f"weights identified by SHA-256 {version.artifact_sha256[:16]}…, architecture and context of "
                   f"{(version.input_schema or {}).get('context', '?')} tokens")
    if version.metrics:
        present.append("measured metrics: " + ", ".join(sorted(str(k) for k in version.metrics)))
    return {
        "guardrails": {"policy": found["policy"], "changes": changes, "decisions": found["decisions"],
                       "sample": found["sample"]},
        "attributions": inference_selectors.version_completion_explanations(version=version),
        "bias": {"probes": _bias(version, "probes"), "pairs": _bias(version, "pairs")},
        "marking": {
            "marked": True,
            "how": "Every answer of /v1/chat/completions and /v1/completions carries steward.ai_generated: true and "
                   "the header X-Steward-AI-Generated naming the model and version; the chat playground and the "
                   "completion pages label answers as AI-generated (EU AI Act Art. 50(2)).",
            "completions_in_period": found["decisions"]["completions"],
        },
        "gpai_documentation": {"present": present, "provider_only": GPAI_PROVIDER_ONLY},
    }


def _audit(excerpt: list[dict[str, Any]]) -> dict[str, Any]:
    run = log_selectors.verification_latest()
    return {
        "log_size": log_selectors.log_size(),
        "excerpt_entries": len(excerpt),
        "excerpt_file": "audit/excerpt.jsonl",
        "excerpt": excerpt,
        "verification": None if run is None else {
            "ok": run.ok, "finished_at": _when(run.finished_at), "entries": run.entries,
            "checkpoints": run.checkpoints, "summary": run.summary,
            # ok | unverified_tail (entries after the last signed checkpoint) | fault
            "verdict": "ok" if run.ok else ("unverified_tail" if run.fault_kind == "unverified_tail" else "fault"),
        },
    }


def excerpt_rows(entries: list[Any]) -> list[dict[str, Any]]:
    """The audit entries as the document lists them (their full form and proofs are in the excerpt file)."""
    return [{"index": e.index, "time": _when(e.created_at), "actor": e.actor_label or e.actor_type,
             "action": e.action, "target": f"{e.target_type}:{e.target_id}" if e.target_type else "",
             "leaf_hash": e.leaf_hash, "erased": e.erased_at is not None} for e in entries]


# ---------------------------------------------------------------- what is missing or failing

# An issue is stored with its code and values, and its message in English (evidence.json, the API);
# a page or the PDF says it in the reader's language from the code (`issue_said`).
ISSUES = {
    "not_approved": gettext_noop("The version is %(status)s: it is not approved for service."),
    "card_missing": gettext_noop("The model card has no '%(field)s'."),
    "no_metrics": gettext_noop("No evaluation metrics are recorded for this version."),
    "compression_beyond_policy": gettext_noop(
        "Compressed from v%(source)s, it lost more than the organisation's compression policy accepts: %(limits)s."),
    "no_bias_report": gettext_noop(
        "No finished bias report: how the model treats demographic groups is not measured."),
    "bias_fails": gettext_noop("The latest bias report (#%(number)s) fails the organisation's thresholds."),
    "bias_warns": gettext_noop("The latest bias report (#%(number)s) warns on the organisation's thresholds."),
    "no_global_explanation": gettext_noop(
        "No global explanation: which inputs drive the model is not documented."),
    "no_local_explanation": gettext_noop("No local explanation has been computed for a prediction of this version."),
    "residual_too_large": gettext_noop(
        "An explanation's residual |base + sum - f(x)| is %(residual)s, above %(limit)s: its attributions do not add "
        "up to the output."),
    "no_privacy_guarantee": gettext_noop(
        "The version was fine-tuned privately but its guarantee is not recorded."),
    "insecure_noise": gettext_noop(
        "The DP noise was drawn without secure_mode (a non-cryptographic generator)."),
    "canaries_exposed": gettext_noop(
        "Canary audit %(audit)s: the private run's canaries are more exposed (%(exposure)s bits) than its epsilon "
        "allows (%(bound)s bits); the stated guarantee cannot be relied on."),
    "no_canary_audit": gettext_noop(
        "No canary audit: what this privately fine-tuned language model lets out of single records is not measured "
        "empirically."),
    "no_guardrails": gettext_noop(
        "No guardrail policy: this generative model's prompts and answers are not checked (PII, moderation, blocked "
        "patterns, output length)."),
    "guardrails_refused": gettext_noop(
        "The guardrail policy refused %(blocked)s prompt(s) and stopped %(filtered)s answer(s) in the period: see "
        "the sample of decisions."),
    "no_bias_probe": gettext_noop(
        "No bias probe: how this generative model writes about groups of people (sentiment, toxicity per group) is "
        "not measured."),
    "no_pairs_report": gettext_noop(
        "No counterfactual pairs report: whether the model prefers stereotyping sentences is not measured."),
    "no_serving": gettext_noop("The version served no request and no batch job in the chosen period."),
    "error_rate": gettext_noop("%(rate)s of requests failed in the period (more than %(limit)s)."),
    "log_unverified": gettext_noop("The audit log has not been verified against its checkpoints yet."),
    "log_tail_unverified": gettext_noop(
        "The latest verification left the newest entries unverified: no signed checkpoint covered them yet "
        "(%(summary)s)."),
    "log_verification_failed": gettext_noop("The latest verification of the audit log failed: %(summary)s"),
}
AREAS = {
    "lifecycle": gettext_lazy("lifecycle"), "model card": gettext_lazy("model card"),
    "evaluation": gettext_lazy("evaluation"), "compression": gettext_lazy("compression"),
    "fairness": gettext_lazy("fairness"), "explanations": gettext_lazy("explanations"),
    "privacy": gettext_lazy("privacy"), "guardrails": gettext_lazy("guardrails"), "serving": gettext_lazy("serving"),
    "audit log": gettext_lazy("audit log"),
}


def issue_said(issue: dict[str, Any]) -> str:
    """An issue's message in the active language (one stored before issues had codes: as stored)."""
    template = ISSUES.get(issue.get("code", ""))
    if template is None:
        return str(issue["message"])
    params = dict(issue.get("params") or {})
    if issue["code"] == "card_missing" and params.get("name") in CARD_LABELS:
        params["field"] = str(CARD_LABELS[params["name"]])
    return gettext(template) % params


def area_said(area: str) -> str:
    return str(AREAS.get(area, area))


def issues(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Failed checks and missing evidence, said plainly, most severe first."""
    found: list[dict[str, Any]] = []

    def add(severity: str, area: str, code: str, **values: Any) -> None:
        params = {name: str(value) for name, value in values.items()}
        found.append({"severity": severity, "area": area, "code": code, "params": params,
                      "message": ISSUES[code] % params})

    model = document["model"]
    if model["status"] != "approved":
        add("high", "lifecycle", "not_approved", status=model["status"])
    for name, text in document["model_card"].items():
        if not str(text).strip():
            severity = "high" if name in CARD_REQUIRED_TO_SUBMIT else "medium"
            add(severity, "model card", "card_missing", field=name.replace("_", " "), name=name)
    if not document["evaluation"]["metrics"]:
        add("high", "evaluation", "no_metrics")
    compressed = document["evaluation"]["compression"]
    if compressed is not None and compressed["beyond_policy"]:
        add("high", "compression", "compression_beyond_policy", source=compressed["source_version"],
            limits="; ".join(compressed["beyond_policy"]))
    bias = document["bias_report"]
    if bias is None:
        add("high", "fairness", "no_bias_report")
    elif bias["verdict"] == "fail":
        add("high", "fairness", "bias_fails", number=bias["number"])
    elif bias["verdict"] == "warn":
        add("medium", "fairness", "bias_warns", number=bias["number"])
    explanations = document["explanations"]
    if explanations["global"] is None:
        add("medium", "explanations", "no_global_explanation")
    if explanations["local_total"] == 0:
        add("low", "explanations", "no_local_explanation")
    worst = explanations["local_max_residual"]
    if worst is not None and worst > RESIDUAL_LIMIT:
        add("medium", "explanations", "residual_too_large", residual=f"{worst:.2e}", limit=f"{RESIDUAL_LIMIT:.0e}")
    privacy = document["privacy"]
    if privacy is not None:
        guarantee = privacy["guarantee"]
        if not guarantee.get("epsilon"):
            add("high", "privacy", "no_privacy_guarantee")
        elif guarantee.get("secure_mode") is False:
            add("medium", "privacy", "insecure_noise")
        audit = privacy.get("canary_audit")
        if audit is not None and not audit["result"]["within_bound"]:
            add("high", "privacy", "canaries_exposed", audit=audit["id"],
                exposure=f"{audit['result']['private']['mean_exposure']:.2f}", bound=f"{audit['result']['bound']:.2f}")
        elif audit is None and privacy.get("job") and privacy["job"].get("adapter"):
            add("low", "privacy", "no_canary_audit")
    generative = document.get("generative")
    if generative is not None and generative["guardrails"]["policy"] is None:
        add("medium", "guardrails", "no_guardrails")
    elif generative is not None and generative["guardrails"]["decisions"]["blocked"] + \
            generative["guardrails"]["decisions"]["filtered"]:
        decisions = generative["guardrails"]["decisions"]
        add("low", "guardrails", "guardrails_refused", blocked=decisions["blocked"], filtered=decisions["filtered"])
    if generative is not None and generative["bias"]["probes"] is None:
        add("medium", "fairness", "no_bias_probe")
    if generative is not None and generative["bias"]["pairs"] is None:
        add("low", "fairness", "no_pairs_report")
    serving = document["serving"]
    if serving["requests"] == 0 and serving["batch"]["jobs"] == 0:
        add("low", "serving", "no_serving")
    elif (serving["error_rate"] or 0) > ERROR_RATE_LIMIT:
        add("medium", "serving", "error_rate", rate=f"{serving['error_rate']:.1%}", limit=f"{ERROR_RATE_LIMIT:.0%}")
    verification = document["audit"]["verification"]
    if verification is None:
        add("medium", "audit log", "log_unverified")
    elif verification.get("verdict") == "unverified_tail":
        add("low", "audit log", "log_tail_unverified", summary=verification["summary"])
    elif not verification["ok"]:
        add("high", "audit log", "log_verification_failed", summary=verification["summary"])
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(found, key=lambda item: order[item["severity"]])
