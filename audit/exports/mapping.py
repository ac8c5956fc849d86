"""The evidence of an export mapped to EU AI Act Annex IV and to the NIST AI RMF functions.

Each item says which parts of the document answer it, and what is missing. The status is
`present` (every part Steward can hold is there), `partial` (some is) or `missing`; items that
only the provider can write (a declaration of conformity, the standards applied) are `missing`
with a note that they are held outside Steward, never silently passed.

Annex IV numbering follows Regulation (EU) 2024/1689; NIST AI RMF subcategories follow AI RMF 1.0
(NIST AI 100-1, January 2023).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Document = dict[str, Any]
Check = Callable[[Document], tuple[list[str], list[str]]]  # (evidence present, evidence missing)


@dataclass(frozen=True)
class Item:
    ref: str
    title: str
    check: Check


def _card(doc: Document, *names: str) -> tuple[list[str], list[str]]:
    have: list[str] = []
    lack: list[str] = []
    for name in names:
        label = f"model card: {name.replace('_', ' ')}"
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
        ([f"model {model['name']} version {model['version']}, task {model['task']}, "
          f"artifact SHA-256 {model['artifact']['sha256'][:16]}..."], []),
        _card(doc, "intended_use", "owner"),
    )


def _software(doc: Document) -> tuple[list[str], list[str]]:
    model = doc["model"]
    return _join(
        ([f"framework {model['framework']}; served by Steward inference workers (CPU, CUDA when present)"], []),
        _when(bool(doc["serving"]["devices"]), "devices that served the period: "
              + ", ".join(doc["serving"]["devices"]), "no serving in the period: devices not observed"),
    )


def _interface(doc: Document) -> tuple[list[str], list[str]]:
    schema = doc["model"]["input_schema"]
    return _join(
        (["REST API /api/v1/models/{name}/predict and the browser playground; labels "
          + ", ".join(doc["model"]["labels"])], []),
        _when(bool(schema) or doc["model"]["task"] == "text-classification",
              "input specification (schema of features or text)", "input schema"),
    )


def _development(doc: Document) -> tuple[list[str], list[str]]:
    privacy = doc["privacy"]
    extra: tuple[list[str], list[str]] = ([f"private fine-tuning job {privacy['job']['id']} from version {privacy['job']['base_version']}"], []) \
        if privacy and privacy.get("job") else ([], [])
    return _join(_card(doc, "training_data"), extra)


def _design(doc: Document) -> tuple[list[str], list[str]]:
    return _join(_card(doc, "intended_use", "limitations"),
                 _when(bool(doc["explanations"]["global"]), "global explanation (which inputs drive the model)",
                       "global explanation of the model's logic"))


def _data(doc: Document) -> tuple[list[str], list[str]]:
    privacy = doc["privacy"]
    extra: tuple[list[str], list[str]] = ([f"training set {privacy['dataset']['name']} (SHA-256 {privacy['dataset']['sha256'][:16]}..., "
              f"{privacy['dataset']['train_rows']} rows) under a privacy ledger"], []) \
        if privacy and privacy.get("dataset") else ([], [])
    return _join(_card(doc, "training_data", "evaluation_data"), extra)


def _oversight(doc: Document) -> tuple[list[str], list[str]]:
    approvals = [t for t in doc["lifecycle"] if t["to"] in ("approved", "rejected")]
    return _join(
        _when(bool(approvals), f"{len(approvals)} review decision(s) by a reviewer other than the submitter",
              "a reviewer's approval"),
        _when(doc["explanations"]["local_total"] > 0, "local explanations for individual decisions (GDPR Art. 22)",
              "local explanations of individual predictions"),
    )


def _testing(doc: Document) -> tuple[list[str], list[str]]:
    bias = doc["bias_report"]
    return _join(
        _when(bool(doc["evaluation"]["metrics"]), "evaluation metrics: " + ", ".join(doc["evaluation"]["metrics"]),
              "evaluation metrics"),
        _when(bias is not None, f"bias report #{bias['number']} ({bias['verdict']})" if bias else "",
              "a bias report (discriminatory impact)"),
        _card(doc, "evaluation_data"),
    )


def _security(doc: Document) -> tuple[list[str], list[str]]:
    verification = doc["audit"]["verification"]
    return _join(
        (["tamper-evident audit log (RFC 9162 Merkle tree, Ed25519 signed checkpoints); this bundle signed "
          "and anchored in it"], []),
        _when(bool(verification and verification["ok"]), "latest full verification of the log passed",
              "a passing verification of the audit log"),
    )


def _monitoring(doc: Document) -> tuple[list[str], list[str]]:
    bias = doc["bias_report"]
    return _join(
        _card(doc, "limitations", "ethical_considerations"),
        _when(bias is not None and bias["kind"] == "tabular", "accuracy and selection rates per group",
              "performance per demographic group"),
    )


def _metrics_fit(doc: Document) -> tuple[list[str], list[str]]:
    return _join(_when(bool(doc["evaluation"]["metrics"]), "metrics on a named evaluation set", "evaluation metrics"),
                 _card(doc, "evaluation_data"))


def _risk(doc: Document) -> tuple[list[str], list[str]]:
    return _join(
        _card(doc, "out_of_scope_uses", "ethical_considerations"),
        (["open issues of this export, listed plainly"], []),
        ([], ["the provider's risk management system (Art. 9): held outside Steward"]),
    )


def _changes(doc: Document) -> tuple[list[str], list[str]]:
    return _when(bool(doc["lifecycle"]), f"lifecycle: {len(doc['lifecycle'])} recorded transitions with who, "
                 "when and why; audit log excerpt", "a recorded lifecycle")


def _outside(what: str) -> Check:
    return lambda doc: ([], [f"{what}: held outside Steward; attach it to this bundle"])


def _post_market(doc: Document) -> tuple[list[str], list[str]]:
    serving = doc["serving"]
    return _join(
        _when(serving["requests"] > 0, f"serving statistics for the period: {serving['requests']} requests, "
              f"error rate {serving['error_rate']:.2%}" if serving["requests"] else "",
              "serving in the period (no traffic to monitor)"),
        ([f"audit log excerpt: {doc['audit']['excerpt_entries']} entries with inclusion proofs"], []),
        ([], ["a written post-market monitoring plan (Art. 72): held outside Steward"]),
    )


def _privacy_check(doc: Document) -> tuple[list[str], list[str]]:
    privacy = doc["privacy"]
    if privacy is None:
        return ["not fine-tuned on protected data in Steward (no privacy guarantee applies)"], []
    guarantee = privacy["guarantee"]
    have, lack = _when(bool(guarantee.get("epsilon")), f"differential privacy: epsilon {guarantee.get('epsilon')}, "
                       f"delta {guarantee.get('delta')} ({guarantee.get('accountant')}), ledger of the training data",
                       "the privacy guarantee")
    audit = privacy.get("canary_audit")
    if audit is not None:
        have.append(f"canary audit {audit['id']}: {audit['summary']}")
    return have, lack


ANNEX_IV = [
    Item("1(a)", "Intended purpose, provider, version", _identity),
    Item("1(b)-(c), 1(e)", "Interaction with hardware and software; versions; hardware it runs on", _software),
    Item("1(g)-(h)", "User interface and instructions for use", _interface),
    Item("2(a)", "Methods and steps of development, pre-trained systems used", _development),
    Item("2(b)", "Design specifications and general logic", _design),
    Item("2(d)", "Data requirements: training data, provenance, labelling", _data),
    Item("2(e)", "Human oversight measures (Art. 14)", _oversight),
    Item("2(g)", "Validation and testing: metrics, discriminatory impact, test reports", _testing),
    Item("2(h)", "Cybersecurity measures", _security),
    Item("3", "Monitoring, functioning and control: limitations, accuracy for groups, risks", _monitoring),
    Item("4", "Appropriateness of the performance metrics", _metrics_fit),
    Item("5", "Risk management system (Art. 9)", _risk),
    Item("6", "Relevant changes through the lifecycle", _changes),
    Item("7", "Harmonised standards applied", _outside("the list of standards applied")),
    Item("8", "EU declaration of conformity (Art. 47)", _outside("the declaration of conformity")),
    Item("9", "Post-market monitoring (Art. 72)", _post_market),
]

NIST_AI_RMF = [
    Item("GOVERN 2.1", "Roles, responsibilities and lines of communication are documented",
         lambda d: _join(_card(d, "owner"), _when(bool(d["lifecycle"]), "named submitter and reviewer for each "
                                                  "transition", "recorded approvals"))),
    Item("GOVERN 4.2", "Risks and impacts are documented and communicated",
         lambda d: _join(_card(d, "limitations", "ethical_considerations"), (["open issues listed"], []))),
    Item("MAP 1.1", "Intended purposes and settings of deployment are documented",
         lambda d: _card(d, "intended_use", "out_of_scope_uses")),
    Item("MAP 2.2", "Knowledge limits and human oversight of outputs are documented",
         lambda d: _join(_card(d, "limitations"), _oversight(d))),
    Item("MEASURE 2.3", "Performance is measured and documented", _metrics_fit),
    Item("MEASURE 2.7", "Security and resilience are evaluated and documented", _security),
    Item("MEASURE 2.9", "The model is explained and its output interpreted in context",
         lambda d: _join(_when(bool(d["explanations"]["global"]), "global explanation", "a global explanation"),
                         _when(d["explanations"]["local_total"] > 0, "local explanations with residuals",
                               "local explanations"))),
    Item("MEASURE 2.10", "Privacy risk is examined and documented", _privacy_check),
    Item("MEASURE 2.11", "Fairness and bias are evaluated and documented",
         lambda d: _when(d["bias_report"] is not None,
                         f"bias report #{d['bias_report']['number']}: {d['bias_report']['verdict']}"
                         if d["bias_report"] else "", "a bias report")),
    Item("MANAGE 1.1", "A determination is made whether the system meets its purpose and should proceed",
         lambda d: _when(d["model"]["status"] == "approved", "approved by a reviewer for service",
                         f"an approval (the version is {d['model']['status']})")),
    Item("MANAGE 4.1", "Post-deployment monitoring is in place", _post_market),
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
            out.append({"item": item.ref, "title": item.title, "status": _status(have, lack),
                        "evidence": have, "missing": lack})
        return out

    return {"eu_ai_act_annex_iv": rows(ANNEX_IV), "nist_ai_rmf": rows(NIST_AI_RMF)}


def coverage(mapped: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """How many items of each framework are present, partial or missing."""
    return {framework: {status: sum(1 for r in rows if r["status"] == status)
                        for status in ("present", "partial", "missing")}
            for framework, rows in mapped.items()}
