"""The evidence of an export mapped to EU AI Act Annex IV and to the NIST AI RMF functions.

Each item says which parts of the document answer it, and what is missing. The status is
`present` (every part Steward can hold is there), `partial` (some is) or `missing`; items that
only the provider can write (a declaration of conformity, the standards applied) are `missing`
with a note that they are held outside Steward, never silently passed.

Annex IV numbering follows Regulation (EU) 2024/1689; NIST AI RMF subcategories follow AI RMF 1.0
(NIST AI 100-1, January 2023).

The words are gettext's: evaluated for evidence.json with no language active (English, the source),
and again under the export's language when the PDF is typeset (`evaluate` is pure over the document).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from audit.fairness.metrics import VERDICT_WORDS

Document = dict[str, Any]
Check = Callable[[Document], tuple[list[str], list[str]]]  # (evidence present, evidence missing)


@dataclass(frozen=True)
class Item:
    ref: str
    title: str
    check: Check


# A card's field inside a phrase, in lower case: a catalogue message of its own, so that the phrase stored in
# evidence.json ("model card: intended use") is said again whole on the export page (portal/platform/said.py).
CARD_FIELD_WORDS = {
    "intended_use": gettext_noop("intended use"), "out_of_scope_uses": gettext_noop("out of scope uses"),
    "training_data": gettext_noop("training data"), "evaluation_data": gettext_noop("evaluation data"),
    "metrics": gettext_noop("metrics"), "limitations": gettext_noop("limitations"),
    "ethical_considerations": gettext_noop("ethical considerations"), "owner": gettext_noop("owner"),
    "languages": gettext_noop("languages"),
}


def _card(doc: Document, *names: str) -> tuple[list[str], list[str]]:
    have: list[str] = []
    lack: list[str] = []
    for name in names:
        label = _("model card: %(field)s") % {"field": _(CARD_FIELD_WORDS[name])}
        (have if str(doc["model_card"].get(name, "")).strip() else lack).append(label)
    return have, lack


def _join(*parts: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
    have: list[str] = []
    lack: list[str] = []
    for h, m in parts:
        have += h
        lack += m
    return have, lack


def _when(condition: bool, present: str, missing: str) -> tuple[list[str], list[str]]:
    return ([present], []) if condition else ([], [missing])


def _identity(doc: Document) -> tuple[list[str], list[str]]:
    model = doc["model"]
    return _join(
        ([_("model %(name)s version %(version)s, task %(task)s, artifact SHA-256 %(sha)s...") % {
            "name": model["name"], "version": model["version"], "task": model["task"],
            "sha": model["artifact"]["sha256"][:16]}], []),
        _card(doc, "intended_use", "owner"),
    )


def _software(doc: Document) -> tuple[list[str], list[str]]:
    model = doc["model"]
    return _join(
        ([_("framework %(framework)s; served by Steward inference workers (CPU, CUDA when present)") % {
            "framework": model["framework"]}], []),
        _when(bool(doc["serving"]["devices"]), _("devices that served the period: %(devices)s") % {
            "devices": ", ".join(doc["serving"]["devices"])}, _("no serving in the period: devices not observed")),
    )


def _interface(doc: Document) -> tuple[list[str], list[str]]:
    schema = doc["model"]["input_schema"]
    return _join(
        ([_("REST API /api/v1/models/{name}/predict and the browser playground; labels %(labels)s") % {
            "labels": ", ".join(doc["model"]["labels"])}], []),
        _when(bool(schema) or doc["model"]["task"] == "text-classification",
              _("input specification (schema of features or text)"), _("input schema")),
    )


def _development(doc: Document) -> tuple[list[str], list[str]]:
    privacy = doc["privacy"]
    extra: tuple[list[str], list[str]] = ([_("private fine-tuning job %(job)s from version %(base)s") % {
        "job": privacy["job"]["id"], "base": privacy["job"]["base_version"]}], []) \
        if privacy and privacy.get("job") else ([], [])
    return _join(_card(doc, "training_data"), extra)


def _design(doc: Document) -> tuple[list[str], list[str]]:
    return _join(_card(doc, "intended_use", "limitations"),
                 _when(bool(doc["explanations"]["global"]), _("global explanation (which inputs drive the model)"),
                       _("global explanation of the model's logic")))


def _data(doc: Document) -> tuple[list[str], list[str]]:
    privacy = doc["privacy"]
    extra: tuple[list[str], list[str]] = ([_("training set %(name)s (SHA-256 %(sha)s..., %(rows)s rows) under a privacy ledger") % {
        "name": privacy["dataset"]["name"], "sha": privacy["dataset"]["sha256"][:16],
        "rows": privacy["dataset"]["train_rows"]}], []) \
        if privacy and privacy.get("dataset") else ([], [])
    return _join(_card(doc, "training_data", "evaluation_data"), extra)


def _oversight(doc: Document) -> tuple[list[str], list[str]]:
    approvals = [t for t in doc["lifecycle"] if t["to"] in ("approved", "rejected")]
    return _join(
        _when(bool(approvals), _("%(count)s review decision(s) by a reviewer other than the submitter") % {
            "count": len(approvals)}, _("a reviewer's approval")),
        _when(doc["explanations"]["local_total"] > 0, _("local explanations for individual decisions (GDPR Art. 22)"),
              _("local explanations of individual predictions")),
    )


def _testing(doc: Document) -> tuple[list[str], list[str]]:
    bias = doc["bias_report"]
    return _join(
        _when(bool(doc["evaluation"]["metrics"]), _("evaluation metrics: %(metrics)s") % {
            "metrics": ", ".join(doc["evaluation"]["metrics"])}, _("evaluation metrics")),
        _when(bias is not None, _("bias report #%(number)s (%(verdict)s)") % {
            "number": bias["number"], "verdict": str(VERDICT_WORDS.get(bias["verdict"], bias["verdict"]))} if bias else "",
              _("a bias report (discriminatory impact)")),
        _card(doc, "evaluation_data"),
    )


def _security(doc: Document) -> tuple[list[str], list[str]]:
    verification = doc["audit"]["verification"]
    return _join(
        ([_("tamper-evident audit log (RFC 9162 Merkle tree, Ed25519 signed checkpoints); this bundle signed "
            "and anchored in it")], []),
        _when(bool(verification and verification["ok"]), _("latest full verification of the log passed"),
              _("a passing verification of the audit log")),
    )


def _monitoring(doc: Document) -> tuple[list[str], list[str]]:
    bias = doc["bias_report"]
    return _join(
        _card(doc, "limitations", "ethical_considerations"),
        _when(bias is not None and bias["kind"] == "tabular", _("accuracy and selection rates per group"),
              _("performance per demographic group")),
    )


def _metrics_fit(doc: Document) -> tuple[list[str], list[str]]:
    return _join(_when(bool(doc["evaluation"]["metrics"]), _("metrics on a named evaluation set"),
                       _("evaluation metrics")),
                 _card(doc, "evaluation_data"))


def _risk(doc: Document) -> tuple[list[str], list[str]]:
    return _join(
        _card(doc, "out_of_scope_uses", "ethical_considerations"),
        ([_("open issues of this export, listed plainly")], []),
        ([], [_("the provider's risk management system (Art. 9): held outside Steward")]),
    )


def _changes(doc: Document) -> tuple[list[str], list[str]]:
    return _when(bool(doc["lifecycle"]), _("lifecycle: %(count)s recorded transitions with who, when and why; audit "
                                           "log excerpt") % {"count": len(doc["lifecycle"])},
                 _("a recorded lifecycle"))


def _outside(what: str) -> Check:
    return lambda doc: ([], [_("%(what)s: held outside Steward; attach it to this bundle") % {"what": _(what)}])


def _post_market(doc: Document) -> tuple[list[str], list[str]]:
    serving = doc["serving"]
    return _join(
        _when(serving["requests"] > 0, _("serving statistics for the period: %(requests)s requests, error rate "
                                         "%(rate)s") % {"requests": serving["requests"],
                                                         "rate": f"{serving['error_rate']:.2%}"}
              if serving["requests"] else "", _("serving in the period (no traffic to monitor)")),
        ([_("audit log excerpt: %(count)s entries with inclusion proofs") % {
            "count": doc["audit"]["excerpt_entries"]}], []),
        ([], [_("a written post-market monitoring plan (Art. 72): held outside Steward")]),
    )


def _privacy_check(doc: Document) -> tuple[list[str], list[str]]:
    privacy = doc["privacy"]
    if privacy is None:
        return [_("not fine-tuned on protected data in Steward (no privacy guarantee applies)")], []
    guarantee = privacy["guarantee"]
    have, lack = _when(bool(guarantee.get("epsilon")), _(
        "differential privacy: epsilon %(epsilon)s, delta %(delta)s (%(accountant)s), ledger of the training data") % {
        "epsilon": guarantee.get("epsilon"), "delta": guarantee.get("delta"), "accountant": guarantee.get("accountant")},
        _("the privacy guarantee"))
    audit = privacy.get("canary_audit")
    if audit is not None:
        have.append(_("canary audit %(audit)s: %(summary)s") % {"audit": audit["id"], "summary": audit["summary"]})
    return have, lack


ANNEX_IV = [
    Item("1(a)", gettext_noop("Intended purpose, provider, version"), _identity),
    Item("1(b)-(c), 1(e)", gettext_noop("Interaction with hardware and software; versions; hardware it runs on"), _software),
    Item("1(g)-(h)", gettext_noop("User interface and instructions for use"), _interface),
    Item("2(a)", gettext_noop("Methods and steps of development, pre-trained systems used"), _development),
    Item("2(b)", gettext_noop("Design specifications and general logic"), _design),
    Item("2(d)", gettext_noop("Data requirements: training data, provenance, labelling"), _data),
    Item("2(e)", gettext_noop("Human oversight measures (Art. 14)"), _oversight),
    Item("2(g)", gettext_noop("Validation and testing: metrics, discriminatory impact, test reports"), _testing),
    Item("2(h)", gettext_noop("Cybersecurity measures"), _security),
    Item("3", gettext_noop("Monitoring, functioning and control: limitations, accuracy for groups, risks"), _monitoring),
    Item("4", gettext_noop("Appropriateness of the performance metrics"), _metrics_fit),
    Item("5", gettext_noop("Risk management system (Art. 9)"), _risk),
    Item("6", gettext_noop("Relevant changes through the lifecycle"), _changes),
    Item("7", gettext_noop("Harmonised standards applied"), _outside(gettext_noop("the list of standards applied"))),
    Item("8", gettext_noop("EU declaration of conformity (Art. 47)"), _outside(gettext_noop("the declaration of conformity"))),
    Item("9", gettext_noop("Post-market monitoring (Art. 72)"), _post_market),
]

NIST_AI_RMF = [
    Item("GOVERN 2.1", gettext_noop("Roles, responsibilities and lines of communication are documented"),
         lambda d: _join(_card(d, "owner"), _when(bool(d["lifecycle"]), _("named submitter and reviewer for each "
                                                    "transition"), _("recorded approvals")))),
    Item("GOVERN 4.2", gettext_noop("Risks and impacts are documented and communicated"),
         lambda d: _join(_card(d, "limitations", "ethical_considerations"), ([_("open issues listed")], []))),
    Item("MAP 1.1", gettext_noop("Intended purposes and settings of deployment are documented"),
         lambda d: _card(d, "intended_use", "out_of_scope_uses")),
    Item("MAP 2.2", gettext_noop("Knowledge limits and human oversight of outputs are documented"),
         lambda d: _join(_card(d, "limitations"), _oversight(d))),
    Item("MEASURE 2.3", gettext_noop("Performance is measured and documented"), _metrics_fit),
    Item("MEASURE 2.7", gettext_noop("Security and resilience are evaluated and documented"), _security),
    Item("MEASURE 2.9", gettext_noop("The model is explained and its output interpreted in context"),
         lambda d: _join(_when(bool(d["explanations"]["global"]), _("global explanation"), _("a global explanation")),
                         _when(d["explanations"]["local_total"] > 0, _("local explanations with residuals"),
                               _("local explanations")))),
    Item("MEASURE 2.10", gettext_noop("Privacy risk is examined and documented"), _privacy_check),
    Item("MEASURE 2.11", gettext_noop("Fairness and bias are evaluated and documented"),
         lambda d: _when(d["bias_report"] is not None,
                         _("bias report #%(number)s: %(verdict)s") % {
                             "number": d["bias_report"]["number"], "verdict": str(VERDICT_WORDS.get(d["bias_report"]["verdict"], d["bias_report"]["verdict"]))}
                         if d["bias_report"] else "", _("a bias report"))),
    Item("MANAGE 1.1", gettext_noop("A determination is made whether the system meets its purpose and should proceed"),
         lambda d: _when(d["model"]["status"] == "approved", _("approved by a reviewer for service"),
                         _("an approval (the version is %(status)s)") % {"status": _(d["model"]["status"])})),
    Item("MANAGE 4.1", gettext_noop("Post-deployment monitoring is in place"), _post_market),
]


def _status(have: list[str], lack: list[str]) -> str:
    if not lack:
        return "present"
    return "partial" if have else "missing"


def evaluate(document: Document) -> dict[str, list[dict[str, Any]]]:
    def rows(items: list[Item]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            have, lack = item.check(document)
            out.append({"item": item.ref, "title": _(item.title), "status": _status(have, lack),
                        "evidence": have, "missing": lack})
        return out

    return {"eu_ai_act_annex_iv": rows(ANNEX_IV), "nist_ai_rmf": rows(NIST_AI_RMF)}


def coverage(mapped: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """How many items of each framework are present, partial or missing."""
    return {framework: {status: sum(1 for r in rows if r["status"] == status)
                        for status in ("present", "partial", "missing")}
            for framework, rows in mapped.items()}
