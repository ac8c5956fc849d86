"""The document's tables as CSV files (one per table, a header row, UTF-8), for spreadsheets."""

from __future__ import annotations

import io
import json
from typing import Any

from audit.fairness.exports import report_table
from portal.platform import csvsafe


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csvsafe.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def tables(document: dict[str, Any]) -> dict[str, bytes]:
    """File name (under tables/) to CSV bytes."""
    files = {
        "lifecycle.csv": _csv(["at", "from", "to", "actor", "comment"],
                              [[t["at"], t["from"], t["to"], t["actor"], t["comment"]] for t in document["lifecycle"]]),
        "metrics.csv": _csv(["metric", "value"], [[k, v] for k, v in document["evaluation"]["metrics"].items()]),
        "serving_daily.csv": _csv(["day", "requests", "rows", "failed"],
                                  [[d["day"], d["requests"], d["rows"], d["failed"]]
                                   for d in document["serving"]["daily"]]),
        "audit_excerpt.csv": _csv(["index", "time", "actor", "action", "target", "leaf_hash", "erased"],
                                  [[e["index"], e["time"], e["actor"], e["action"], e["target"], e["leaf_hash"],
                                    e["erased"]] for e in document["audit"]["excerpt"]]),
        "issues.csv": _csv(["severity", "area", "message"],
                           [[i["severity"], i["area"], i["message"]] for i in document["issues"]]),
    }
    mapped = document["regulatory_mapping"]
    for framework, name in (("eu_ai_act_annex_iv", "eu_ai_act_annex_iv.csv"), ("nist_ai_rmf", "nist_ai_rmf.csv")):
        files[name] = _csv(["item", "title", "status", "evidence", "missing"],
                           [[r["item"], r["title"], r["status"], "; ".join(r["evidence"]), "; ".join(r["missing"])]
                            for r in mapped[framework]])
    if document["bias_report"] is not None:
        bias = document["bias_report"]
        files["bias_report.csv"] = _csv(*report_table(bias["kind"], bias["result"]))
    explanations = document["explanations"]
    if explanations["global"] is not None:
        ranking = explanations["global"].get("ranking", [])
        files["global_explanation.csv"] = _csv(
            ["rank", "name", "mean_abs_shap", "mean_signed_shap", "rows_containing"],
            [[i + 1, r["name"], r["mean_abs"], r.get("mean_signed"), r.get("occurrences")] for i, r in enumerate(ranking)])
    if explanations["local_sample"]:
        rows = []
        for item in explanations["local_sample"]:
            for feature, value in zip(item["features"], label_values(item), strict=False):
                rows.append([item["id"], item["prediction"], item["row"], item["label"], feature, value,
                             item["residual"], item["method"]])
        files["local_explanations.csv"] = _csv(
            ["explanation", "prediction", "row", "label", "feature_or_token", "shap_value", "residual", "method"], rows)
    privacy = document["privacy"]
    if privacy is not None and privacy.get("dataset"):
        files["privacy_ledger.csv"] = _csv(
            ["job", "state", "noise_multiplier", "sample_rate", "steps_reserved", "steps_spent", "epsilon_planned",
             "created_at", "settled_at", "audit"],  # a canary audit's private run: `audit`, not `job`
            [[e["job"], e["state"], e["noise_multiplier"], e["sample_rate"], e["steps_reserved"], e["steps_spent"],
              e["epsilon_planned"], e["created_at"], e["settled_at"], e.get("audit")]
             for e in privacy["dataset"]["ledger"]])
    if privacy is not None and privacy.get("canary_audit"):
        found = privacy["canary_audit"]["result"]
        arms = [key for key in ("base", "private", "non_private") if key in found]
        files["canary_exposures.csv"] = _csv(
            ["secret", *(f"exposure_{key}" for key in arms), *(f"exposure_counted_{key}" for key in arms),
             "bound"],
            [[c["secret"], *(found[key]["canaries"][i]["exposure"] for key in arms),
              *(found[key]["canaries"][i]["exposure_counted"] for key in arms), found["bound"]]
             for i, c in enumerate(found["private"]["canaries"])])
    generative = document.get("generative")
    if generative is not None:
        files["guardrail_decisions.csv"] = _csv(
            ["completion", "at", "outcome", "policy_revision", "stage", "check", "action", "detail"],
            [[c["completion"], c["at"], c["outcome"], c["policy_revision"], x.get("stage"), x.get("check"),
              x.get("action"), json.dumps({k: v for k, v in x.items() if k not in ("stage", "check", "action")},
                                          ensure_ascii=False, sort_keys=True)]
             for c in generative["guardrails"]["sample"] for x in c["decisions"]])
    return {f"tables/{name}": data for name, data in files.items()}


def label_values(item: dict[str, Any]) -> list[float]:
    """An explanation's values towards its explained label (values are per feature, per label)."""
    values = item["values"]
    if values and isinstance(values[0], list):
        column = item["labels"].index(item["label"]) if item["label"] in item["labels"] else 0
        return [row[column] for row in values]
    return list(values)
