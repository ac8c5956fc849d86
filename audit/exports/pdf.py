"""The export's PDF report for people, typeset with ReportLab from the JSON document alone.

Fonts are Bitstream Vera, shipped inside ReportLab and embedded in the file (no system package);
the charts are the portal's own SVG charts (bias report, global explanation), converted by svglib
with the portal's chart colours. Every chart is followed by the table of its numbers.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

from django.utils import formats
from django.utils.translation import gettext as _

from audit.exports import mapping
from audit.exports.document import area_said, issue_said
from audit.exports.typesetting import (
    CJK_FONT,
    FONT,
    SEVERITY_COLOURS,
    STATUS_COLOURS,
    VERDICT_COLOURS,
    Builder,
    clean,
    has_cjk,
    num,
    status_mark,
)
from audit.exports.words import key_said


def when(value: str | None, *, day: bool = False, seconds: bool = False) -> str:
    """An instant (or a day) of the evidence, held as ISO 8601 in UTC, as the report's language writes it
    (portal/formats: 2026-12-04 14:05 in English, 2026年12月4日 14:05 in Chinese)."""
    if not value:
        return ""
    if len(value) == 10:
        return formats.date_format(date.fromisoformat(value), "DATE_FORMAT")
    instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if instant.tzinfo is not None:
        instant = instant.astimezone(UTC)
    if day:
        return formats.date_format(instant.date(), "DATE_FORMAT")
    return formats.date_format(instant, "SHORT_DATETIME_FORMAT" if seconds else "DATETIME_FORMAT")

def _sections(b: Builder) -> None:
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak

    doc = b.doc
    model, export = doc["model"], doc["export"]
    b.p(_("Technical documentation: %(model)s version %(version)s") % {
        "model": clean(model["name"]), "version": model["version"]}, "title")
    b.p(_("%(organization)s. Compliance export #%(number)s, generated %(at)s UTC by %(by)s, from the live evidence held "
          "by Steward. Serving period %(start)s to %(end)s.") % {
        "organization": clean(export["organization"]["name"]), "number": export["number"],
        "at": clean(when(export["generated_at"], seconds=True)), "by": clean(export["generated_by"]),
        "start": when(export["period"]["start"]), "end": when(export["period"]["end"])})
    b.p(_("Prepared for EU AI Act Art. 11 and Annex IV (technical documentation) and the NIST AI RMF. The files of this "
          "bundle are listed with their SHA-256 in manifest.json, which is signed with the audit log's key and "
          "anchored in the log; section 11 says how to verify it offline."), "small")
    b.table([_("model"), _("version"), _("task"), _("status"), _("aliases"), _("artifact SHA-256")],
            [[model["name"], model["version"], model["task"], model["status"],
              ", ".join(model["aliases"]) or _("none"), model["artifact"]["sha256"]]],
            widths=[2.4 * cm, 1.4 * cm, 3.2 * cm, 1.8 * cm, 2 * cm, 6.2 * cm])
    issues = doc["issues"]
    counts = {s: sum(1 for i in issues if i["severity"] == s) for s in ("high", "medium", "low")}
    coverage = mapping.coverage(doc["regulatory_mapping"])
    b.heading(_("1. Summary and open issues"))
    annex, nist = coverage["eu_ai_act_annex_iv"], coverage["nist_ai_rmf"]
    b.p(_("%(issues)s open issue(s): %(high)s high, %(medium)s medium, %(low)s low. Annex IV items: %(a_present)s "
          "present, %(a_partial)s partial, %(a_missing)s missing. NIST AI RMF items: %(n_present)s present, "
          "%(n_partial)s partial, %(n_missing)s missing.") % {
        "issues": len(issues), **counts, "a_present": annex["present"], "a_partial": annex["partial"],
        "a_missing": annex["missing"], "n_present": nist["present"], "n_partial": nist["partial"],
        "n_missing": nist["missing"]})
    if issues:
        b.table([_("severity"), _("area"), _("issue")],
                [[status_mark(i["severity"], SEVERITY_COLOURS), area_said(i["area"]), issue_said(i)] for i in issues],
                widths=[2 * cm, 2.6 * cm, 12.4 * cm])
    else:
        b.p(_("No open issue: every check passed and no evidence is missing."))

    b.heading(_("2. Model card"))
    b.p(clean(model["description"]))
    from inference.services.registry import CARD_LABELS

    b.table([_("field"), _("text")],
            [[str(CARD_LABELS.get(k, k.replace("_", " "))), v or _("(empty)")] for k, v in doc["model_card"].items()],
            widths=[3.6 * cm, 13.4 * cm])
    if model["input_schema"].get("features"):
        b.heading(_("Input schema"), 2)
        b.table([_("feature"), _("type"), _("allowed values or range")],
                [[f["name"], f["type"], ", ".join(map(str, f["values"])) if f.get("values")
                  else _("%(low)s to %(high)s") % {"low": num(f.get("min")), "high": num(f.get("max"))}]
                 for f in model["input_schema"]["features"]],
                widths=[4 * cm, 2.4 * cm, 10.6 * cm])

    b.heading(_("3. Lifecycle and approvals"))
    b.p(_("Registered by %(by)s on %(at)s. Every transition, with who made it, when and why:") % {
        "by": clean(model["registered_by"]), "at": clean(when(model["registered_at"], day=True))})
    b.table([_("when (UTC)"), _("from"), _("to"), _("by"), _("why")],
            [[when(t["at"], seconds=True), t["from"] or "-", t["to"], t["actor"], t["comment"]]
             for t in doc["lifecycle"]], widths=[3.2 * cm, 2 * cm, 2 * cm, 2.6 * cm, 7.2 * cm])

    b.heading(_("4. Evaluation metrics"))
    metrics = doc["evaluation"]["metrics"]
    if metrics:
        b.table([_("metric"), _("value")], [[key_said(k), v] for k, v in metrics.items()],
                widths=[7 * cm, 5 * cm])
    else:
        b.p(_("No evaluation metrics are recorded for this version."))
    compressed = doc["evaluation"].get("compression")
    if compressed is not None:
        b.p(clean(compressed["headline"]) + " " + (
            _("Beyond the organisation's compression policy: %(why)s.") % {
                "why": clean(_("; ").join(compressed["beyond_policy"]))}
            if compressed["beyond_policy"] else _("Within the organisation's compression policy.")))

    b.heading(_("5. Bias report"))
    bias = doc["bias_report"]
    if bias is None:
        b.p(_("No bias report has been run on this version."))
    else:
        _bias_section(b, bias)

    b.heading(_("6. Explanations"))
    _explanation_section(b, doc["explanations"], model)

    b.heading(_("7. Privacy guarantee and training data ledger"))
    _privacy_section(b, doc["privacy"])

    b.heading(_("8. Serving statistics"))
    s = doc["serving"]
    rate = _("n/a") if s["error_rate"] is None else f"{s['error_rate']:.2%}"
    b.p(_("From %(since)s to %(until)s (exclusive): %(requests)s requests, %(rows)s rows, %(failed)s failed, error "
          "rate %(rate)s. Batch jobs: %(jobs)s (%(batch_rows)s rows predicted, %(batch_failed)s failed, "
          "%(cancelled)s cancelled); %(rows_all)s rows in all.") % {
        "since": clean(when(s["since"], day=True)), "until": clean(when(s["until"], day=True)), "requests": s["requests"],
        "rows": s["rows"], "failed": s["failed"], "rate": rate, "jobs": s["batch"]["jobs"],
        "batch_rows": s["batch"]["rows"], "batch_failed": s["batch"]["failed"],
        "cancelled": s["batch"]["cancelled"], "rows_all": s["rows_all"]})
    b.table(["", "p50", "p95", "p99", "max"],
            [[_("latency, request to answer (ms)"), *[s["latency_ms"][k] for k in ("p50", "p95", "p99", "max")]],
             [_("model compute (ms)"), *[s["compute_ms"][k] for k in ("p50", "p95", "p99", "max")]]],
            widths=[6 * cm, 2.5 * cm, 2.5 * cm, 2.5 * cm, 2.5 * cm])
    if s["devices"]:
        b.p(_("Devices: %(devices)s") % {"devices": clean(", ".join(
            _("%(device)s (%(requests)s requests)") % {"device": k, "requests": v} for k, v in s["devices"].items()))})
    energy = s["energy"]
    how = (_("%(wh)s Wh of it estimated") % {"wh": f"{energy['estimated_wh']:.4f}"} if energy["estimated_wh"]
           else _("measured"))
    b.p(_("Energy: %(wh)s Wh, %(carbon)s g CO2e at %(grid)s g/kWh (%(source)s); %(how)s (%(method)s).") % {
        "wh": f"{energy['energy_wh']:.4f}", "carbon": f"{energy['carbon_g']:.4f}",
        "grid": f"{energy['grid_g_per_kwh']:.0f}", "source": clean(energy["grid_source"]), "how": how,
        "method": clean(energy["method"])})
    if s["daily"]:
        b.table([_("day"), _("requests"), _("rows"), _("failed")],
                [[d["day"], d["requests"], d["rows"], d["failed"]] for d in s["daily"][-62:]],
                widths=[3 * cm, 3 * cm, 3 * cm, 3 * cm])
    if doc.get("generative") is not None:
        _generative_section(b, doc["generative"])

    b.heading(_("9. Audit log"))
    audit = doc["audit"]
    verification = audit["verification"]
    if verification is None:
        verified = _("It has not been verified against its checkpoints yet.")
    else:
        verified = _("Latest full verification (%(at)s UTC): %(outcome)s; %(summary)s") % {
            "at": clean(when(verification["finished_at"], seconds=True)),
            "outcome": _("passed") if verification["ok"] else _("FAILED"), "summary": clean(verification["summary"])}
    b.p(_("The log holds %(size)s entries.") % {"size": audit["log_size"]} + " " + verified)
    b.p(_("The %(count)s entries about this version follow; each is in %(file)s in full, with its inclusion proof "
          "against a signed checkpoint.") % {"count": audit["excerpt_entries"], "file": clean(audit["excerpt_file"])})
    shown = audit["excerpt"][-200:]
    if len(audit["excerpt"]) > len(shown):
        b.p(_("(The last %(count)s are listed here.)") % {"count": len(shown)}, "small")
    b.table([_("index"), _("when (UTC)"), _("actor"), _("action"), _("target")],
            [[e["index"], e["time"][:19].replace("T", " "), e["actor"], e["action"], e["target"]] for e in shown],
            widths=[1.4 * cm, 3.2 * cm, 3.6 * cm, 4.4 * cm, 4.4 * cm])

    b.story.append(PageBreak())
    b.heading(_("10. Regulatory mapping"))
    said_mapping = mapping.evaluate(doc)  # the same evaluation, its words in the report's language
    for key, title in (("eu_ai_act_annex_iv", _("EU AI Act, Annex IV (technical documentation)")),
                       ("nist_ai_rmf", _("NIST AI RMF 1.0 (Govern, Map, Measure, Manage)"))):
        b.heading(title, 2)
        b.table([_("item"), _("subject"), _("status"), _("evidence present"), _("missing")],
                [[r["item"], r["title"], status_mark(r["status"], STATUS_COLOURS), _("; ").join(r["evidence"]) or "-",
                  _("; ").join(r["missing"]) or "-"] for r in said_mapping[key]],
                widths=[2 * cm, 3.6 * cm, 1.6 * cm, 5.2 * cm, 4.6 * cm])

    b.heading(_("11. Verifying this bundle"))
    b.p(_("Every file of the bundle is listed in manifest.json with its SHA-256; manifest.sig is an Ed25519 signature "
          "of manifest.json by the audit log's key. The manifest's anchor is the log entry that recorded this export "
          "(the hash of its file list), with an inclusion proof against a signed checkpoint; the audit excerpt's "
          "entries carry proofs against an earlier signed checkpoint that the anchor's extends. Check it offline with "
          "the standalone verifier, which needs Python and the cryptography package but no Steward database:"))
    b.p("<font name='Courier'>python -m audit.log.verify BUNDLE.zip --public-key steward-audit.pem</font>")
    b.p(_("Obtain the public key from the portal (/api/v1/audit/public-key) rather than from the bundle. The verifier "
          "names the first file that does not match."), "small")


def _bias_section(b: Builder, bias: dict[str, Any]) -> None:
    from reportlab.lib.units import cm

    from audit.fairness import charts
    from audit.fairness.exports import report_table
    from audit.fairness.metrics import metric_said

    result = bias["result"]
    b.p(_("Report #%(number)s (%(kind)s) on %(dataset)s (%(rows)s rows, SHA-256 %(digest)s...), finished %(at)s. "
          "Verdict against the organisation's thresholds: %(verdict)s.") % {
        "number": bias["number"], "kind": bias["kind"], "dataset": clean(bias["dataset"]["name"]),
        "rows": bias["dataset"]["rows"], "digest": bias["dataset"]["sha256"][:16],
        "at": clean(when(bias["finished_at"], day=True)), "verdict": status_mark(bias["verdict"], VERDICT_COLOURS)})
    interval = _("95% interval")
    if bias["kind"] == "tabular":
        for axis in result.get("axes", [])[:4]:
            b.heading(_("By %(axis)s") % {"axis": axis["axis"]}, 2)
            b.chart(str(charts.selection_rate_chart(axis)))
            b.table([_("group"), _("count"), _("selection rate"), interval, _("accuracy"), "TPR", "FPR"],
                    [[g["group"], g["count"], g.get("selection_rate"),
                      "-" if g.get("selection_rate_ci95") is None or g["selection_rate_ci95"][0] is None else
                      _("%(low)s to %(high)s") % {"low": f"{g['selection_rate_ci95'][0]:.3f}",
                                                  "high": f"{g['selection_rate_ci95'][1]:.3f}"},
                      g.get("accuracy"), g.get("true_positive_rate"), g.get("false_positive_rate")]
                     for g in axis["groups"]], widths=[4 * cm, 1.6 * cm, 2.2 * cm, 3.2 * cm, 2 * cm, 2 * cm, 2 * cm])
            b.table([_("disparity"), _("value"), interval, _("verdict")],
                    [[metric_said(name), d["value"],
                      _("%(low)s to %(high)s") % {"low": num(d["ci95"][0]), "high": num(d["ci95"][1])},
                      status_mark(d["verdict"], VERDICT_COLOURS)]
                     for name, d in axis["disparities"].items()], widths=[6 * cm, 2.4 * cm, 4 * cm, 2.4 * cm])
    elif bias["kind"] in ("probes", "pairs"):
        _generative_bias(b, bias)
    else:
        if result.get("direction"):
            b.p("<b>" + _("The score label looks reversed.") + "</b> " + clean(result["direction"]["message"]))
        b.chart(str(charts.identity_shift_chart(result.get("per_term", []))))
        header, rows = report_table(bias["kind"], result)
        b.table(header[:7], [r[:7] for r in rows])
        checks = result.get("checks", {})
        if checks:
            b.table([_("check"), _("value"), _("verdict")],
                    [[metric_said(name), c.get("value"),
                      status_mark(c["verdict"], VERDICT_COLOURS)]
                     for name, c in checks.items()], widths=[6 * cm, 3 * cm, 3 * cm])


def _generative_bias(b: Builder, bias: dict[str, Any]) -> None:
    """A probes report (per-group charts and tables, the gaps) or a pairs report (per bias type)."""
    from reportlab.lib.units import cm

    from audit.fairness import charts
    from audit.fairness.metrics import metric_said

    result = bias["result"]
    interval = _("95% interval")
    if bias["kind"] == "probes":
        scoring = result.get("scoring", {})
        b.p(_("Completions sampled from the model, scored by %(sentiment)s (sentiment) and %(moderation)s (toxicity); "
              "intervals: %(interval)s.") % {
            "sentiment": clean(scoring.get("sentiment_model", "?")),
            "moderation": clean(scoring.get("moderation_model", "?")),
            "interval": clean(result.get("settings", {}).get("interval", ""))})
        for chart in charts.probe_charts(result):
            b.chart(str(chart["chart"]))
        b.table([_("group"), _("completions"), _("mean sentiment"), _("negative rate"), _("toxic rate")],
                [[g["group"], g["completions"], _("too small") if g["too_small"] else g["mean_sentiment"],
                  g["negative_rate"], g["toxic_rate"]] for g in result.get("groups", [])],
                widths=[5 * cm, 2.4 * cm, 3 * cm, 3 * cm, 3 * cm])
        b.table([_("gap between groups"), _("value"), interval, _("verdict")],
                [[metric_said(name), d["value"],
                  _("%(low)s to %(high)s") % {"low": num(d["ci95"][0]), "high": num(d["ci95"][1])},
                  status_mark(d["verdict"], VERDICT_COLOURS)] for name, d in result.get("disparities", {}).items()],
                widths=[6 * cm, 2.4 * cm, 4 * cm, 2.4 * cm])
    else:
        overall = result.get("overall", {})
        b.p(_("%(pairs)s pairs; the model found the stereotyping sentence the likelier in %(rate)s of them (95%% "
              "interval %(low)s to %(high)s); 0.5 is no preference.") % {
            "pairs": overall.get("pairs"), "rate": num(overall.get("preference_rate")),
            "low": num(overall.get("ci95", [None])[0]), "high": num(overall.get("ci95", [None, None])[1])})
        b.chart(str(charts.pairs_chart(result)))
        b.table([_("bias type"), _("pairs"), _("preference rate"), interval, _("verdict")],
                [[r["bias_type"], r["pairs"], r["preference_rate"],
                  _("%(low)s to %(high)s") % {"low": num(r["ci95"][0]), "high": num(r["ci95"][1])},
                  status_mark(r["verdict"], VERDICT_COLOURS)] for r in result.get("per_type", [])],
                widths=[5 * cm, 2 * cm, 3 * cm, 4 * cm, 2.4 * cm])


def _explanation_section(b: Builder, explanations: dict[str, Any], model: dict[str, Any]) -> None:
    from reportlab.lib.units import cm

    from audit.exports.tables import label_values
    from inference.charts import global_bars

    latest = explanations["global"]
    b.heading(_("Global explanation"), 2)
    if latest is None:
        b.p(_("No global explanation has been computed for this version."))
    else:
        ranking = latest.get("ranking", [])
        b.p(_("Global explanation #%(number)s: mean |SHAP| over %(rows)s rows of %(dataset)s (methods %(methods)s, "
              "budget %(budget)s evaluations per row, largest residual %(residual)s).") % {
            "number": latest["number"], "rows": latest.get("rows", latest["rows_total"]),
            "dataset": clean(latest["dataset"]), "methods": clean(", ".join(latest.get("methods", []))),
            "budget": latest["max_evals"], "residual": num(latest.get("max_residual"))})
        b.chart(str(global_bars(ranking, kind=latest.get("kind", "feature"))))
        b.table([_("rank"), _("word or feature"), _("mean |SHAP|"), _("mean signed"), _("rows containing it")],
                [[i + 1, r["name"], r["mean_abs"], r.get("mean_signed"), r.get("occurrences")]
                 for i, r in enumerate(ranking[:20])], widths=[1.4 * cm, 5 * cm, 3 * cm, 3 * cm, 3.4 * cm])
    b.heading(_("Local explanations (a sample)"), 2)
    total = explanations["local_total"]
    if not explanations["local_sample"]:
        b.p(_("No prediction of this version has been explained yet."))
        return
    b.p(_("Predictions of this version explained: %(total)s; the latest %(shown)s follow. Largest residual |base + "
          "sum(SHAP) - f(x)| over all of them: %(residual)s.") % {
        "total": total, "shown": len(explanations["local_sample"]),
        "residual": num(explanations["local_max_residual"])})
    for item in explanations["local_sample"]:
        label = item["label"]
        b.p(_("<b>Explanation %(id)s</b> of prediction %(prediction)s (row %(row)s): predicted %(label)s; method "
              "%(method)s, %(evaluations)s evaluations, residual %(residual)s.") % {
            "id": item["id"], "prediction": item["prediction"], "row": item["row"], "label": clean(label),
            "method": clean(item["method"]), "evaluations": item["evaluations"], "residual": num(item["residual"])})
        if item.get("words"):
            reach = max((abs(w["value"]) for w in item["words"]), default=0) or 1.0
            spans = []
            for w in item["words"]:
                strength = min(abs(w["value"]) / reach, 1.0)
                colour = _tint(strength, towards=w["value"] > 0)
                spans.append(f'<span backColor="{colour}">{clean(w["word"])}</span>')
            b.p(" ".join(spans))
            b.p(_("Orange: towards %(label)s; blue: away from it (the values are in "
                  "tables/local_explanations.csv).") % {"label": clean(label)}, "small")
        if item.get("summary"):
            b.p(clean(item["summary"]))
        values = label_values(item)
        top = sorted(zip(item["features"], values, strict=False), key=lambda fv: -abs(fv[1]))[:8]
        b.table([_("word or feature"), _("SHAP towards %(label)s") % {"label": label}], [[f, v] for f, v in top],
                widths=[6 * cm, 4 * cm])


def _tint(strength: float, *, towards: bool) -> str:
    """White to orange (towards the label) or to blue (away), by strength in [0, 1]."""
    target = (214, 96, 32) if towards else (44, 110, 180)
    mix = 0.15 + 0.6 * strength
    r, g, bl = (round(255 + (c - 255) * mix) for c in target)
    return f"#{r:02x}{g:02x}{bl:02x}"


def _generative_section(b: Builder, generative: dict[str, Any]) -> None:
    from reportlab.lib.units import cm

    guard = generative["guardrails"]
    b.heading(_("Generated text: the guardrail policy and its decisions"), 2)
    policy = guard["policy"]
    if policy is None:
        b.p(_("No guardrail policy applies to this model: its prompts and answers are not checked."))
    else:
        whose = _("The model's policy") if policy["scope"] == "model" else _("The organisation's policy")
        b.p(_("%(whose)s, revision %(revision)s, set by %(by)s: PII %(pii)s; prompts %(input_action)s from a score of "
              "%(input_threshold)s, answers %(output_action)s from %(output_threshold)s (moderation model "
              "%(moderation)s); %(patterns)s blocked pattern(s); longest answer %(longest)s tokens.") % {
            "whose": whose, "revision": policy["revision"], "by": clean(policy["updated_by"]),
            "pii": _("masked before the model") if policy["mask_pii"] else _("not masked"),
            "input_action": policy["input"]["action"], "input_threshold": policy["input"]["threshold"],
            "output_action": policy["output"]["action"], "output_threshold": policy["output"]["threshold"],
            "moderation": clean(policy["moderation_model"]), "patterns": len(policy["blocked_patterns"]),
            "longest": policy["max_output_tokens"] or _("as requested")})
    d = guard["decisions"]
    b.table([_("completions"), _("passed"), _("flagged"), _("prompts refused"), _("answers stopped"), _("unchecked")],
            [[d["completions"], d["passed"], d["flagged"], d["blocked"], d["filtered"], d["unchecked"]]])
    if guard["changes"]:
        b.table([_("log entry"), _("when (UTC)"), _("who"), _("change"), _("revision"), _("fields")],
                [[c["index"], when(c["at"], seconds=True), c["actor"], c["action"], c["revision"],
                  ", ".join(c["changed"]) or "-"] for c in guard["changes"]],
                widths=[1.6 * cm, 3.2 * cm, 3 * cm, 3.6 * cm, 1.6 * cm, 4 * cm])
    if guard["sample"]:
        b.table([_("completion"), _("when (UTC)"), _("outcome"), _("decisions")],
                [[c["completion"], when(c["at"], seconds=True), c["outcome"],
                  _("; ").join(f"{x['stage']} {x['check']}: {x['action']}" for x in c["decisions"])]
                 for c in guard["sample"]], widths=[2 * cm, 3.2 * cm, 2 * cm, 9.8 * cm])
    b.heading(_("Attributions for generated text"), 2)
    attributions = generative["attributions"]
    if not attributions["total"]:
        b.p(_("No attribution has been computed for a completion of this version."))
    else:
        worst = attributions["max_residual"]
        b.p(_("%(total)s finished; the largest residual |base + sum - output| is %(residual)s. The latest:") % {
            "total": attributions["total"], "residual": _("n/a") if worst is None else f"{worst:.1e}"})
        b.table([_("explanation"), _("completion"), _("span"), _("method"), _("top words")],
                [[a["id"], a["completion"], a["span"][:40], a["method"],
                  ", ".join(f"{w['word']} {w['value']:+.2f}" for w in a["top_words"][:3])] for a in attributions["sample"]],
                widths=[2 * cm, 2 * cm, 5 * cm, 2 * cm, 6 * cm])
    b.heading(_("Bias of generated text"), 2)
    for kind, what in (("probes", _("Bias probes")), ("pairs", _("Counterfactual pairs"))):
        report = generative["bias"][kind]
        if report is None:
            b.p(_("%(what)s: none has been run on this version.") % {"what": what})
        else:
            b.p(_("<b>%(what)s</b>: report #%(number)s on %(dataset)s, verdict %(verdict)s.") % {
                "what": what, "number": report["number"], "dataset": clean(report["dataset"]["name"]),
                "verdict": status_mark(report["verdict"], VERDICT_COLOURS)})
            _generative_bias(b, report)
    b.heading(_("Marking of generated text (EU AI Act Art. 50)"), 2)
    b.p(clean(generative["marking"]["how"]))
    b.heading(_("Documentation of a general-purpose model (Art. 53, Annexes XI-XII)"), 2)
    b.p(_("Held by Steward: %(present)s.") % {"present": clean(_("; ").join(generative["gpai_documentation"]["present"]))})
    b.p(_("Only the model's provider can supply: %(missing)s.") % {
        "missing": clean(_("; ").join(generative["gpai_documentation"]["provider_only"]))})


def _privacy_section(b: Builder, privacy: dict[str, Any] | None) -> None:
    from reportlab.lib.units import cm

    if privacy is None:
        b.p(_("This version was not fine-tuned on protected data in Steward: no differential privacy guarantee "
              "applies."))
        return
    guarantee = privacy["guarantee"]
    b.p(_("(%(epsilon)s, %(delta)s)-differential privacy at the level of %(unit)s, by %(mechanism)s; accountant "
          "%(accountant)s.") % {
        "epsilon": clean(guarantee.get("epsilon")), "delta": clean(guarantee.get("delta")),
        "unit": clean(guarantee.get("unit", _("one record"))), "mechanism": clean(guarantee.get("mechanism", "DP-SGD")),
        "accountant": clean(guarantee.get("accountant", ""))})
    b.table([_("parameter"), _("value")], [[key_said(k), v] for k, v in guarantee.items()],
            widths=[5 * cm, 9 * cm])
    dataset = privacy.get("dataset")
    if dataset:
        budget = dataset["budget"]
        b.heading(_("Training data and its privacy ledger"), 2)
        b.p(_("Dataset %(name)s (SHA-256 %(digest)s..., %(train)s training and %(held)s held-out rows), cap epsilon "
              "%(epsilon)s at delta %(delta)s. Spent (settled runs): %(spent)s; committed (with reservations): "
              "%(committed)s; composed with %(accountant)s.") % {
            "name": clean(dataset["name"]), "digest": dataset["sha256"][:16], "train": dataset["train_rows"],
            "held": dataset["holdout_rows"], "epsilon": dataset["epsilon_cap"], "delta": dataset["delta_cap"],
            "spent": num(budget["epsilon_spent"]), "committed": num(budget["epsilon_committed"]),
            "accountant": clean(budget["accountant"])})
        b.table([_("run"), _("state"), _("noise"), _("sample rate"), _("steps reserved"), _("steps spent"),
                 _("planned epsilon")],
                [[_("job %(number)s") % {"number": e["job"]} if e.get("job")
                  else _("canary audit %(number)s") % {"number": e.get("audit")}, e["state"],
                  e["noise_multiplier"], e["sample_rate"], e["steps_reserved"], e["steps_spent"], e["epsilon_planned"]]
                 for e in dataset["ledger"]])
    audit = privacy.get("canary_audit")
    if audit is not None:
        found = audit["result"]
        b.heading(_("Empirical privacy audit (canaries)"), 2)
        b.p(_("Audit %(id)s: %(summary)s Exposure (Carlini et al. 2019) is log2 of the number of possible secrets "
              "(%(bits)s bits) minus log2 of the canary's rank by the model's likelihood, estimated against "
              "%(references)s secrets never inserted. The bound is the largest mean exposure the private run's "
              "epsilon allows; %(outcome)s") % {
            "id": audit["id"], "summary": clean(audit["summary"]), "bits": num(found["space_bits"]),
            "references": found["references"],
            "outcome": _("the private run is within it.") if found["within_bound"]
            else _("THE PRIVATE RUN IS BEYOND IT.")})
        arms = [(_("before fine-tuning"), "base"), (_("private run"), "private"), (_("without privacy"), "non_private")]
        b.table([_("model"), _("mean exposure (bits)"), _("largest"), _("mean, counted")],
                [[label, found[key]["mean_exposure"], found[key]["max_exposure"], found[key]["mean_exposure_counted"]]
                 for label, key in arms if key in found] + [[_("bound from epsilon"), found["bound"], "", ""]])


def render(document: dict[str, Any]) -> bytes:
    """The PDF, with an outline of its sections and each page's header and number, in the language
    active when it is called (the export's: the worker renders it under translation.override)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    builder = Builder(document)
    _sections(builder)
    model, export = document["model"], document["export"]
    title = _("Technical documentation: %(model)s v%(version)s") % {"model": model["name"], "version": model["version"]}
    header = _("Steward. %(title)s. Export #%(number)s") % {"title": title, "number": export["number"]}
    header_font = CJK_FONT if has_cjk(header) else FONT

    class _Doc(SimpleDocTemplate):
        def afterFlowable(self, flowable: Any) -> None:
            mark = getattr(flowable, "_bookmark", None)
            if mark:
                text, level = mark
                key = f"s{id(flowable)}"
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(text, key, level=level - 1)

    def page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(header_font, 7.5)
        canvas.setFillColorRGB(0.36, 0.4, 0.47)
        canvas.drawString(2 * cm, A4[1] - 1.2 * cm, header)
        number = _("page %(number)s") % {"number": doc.page}
        canvas.setFont(CJK_FONT if has_cjk(number) else FONT, 7.5)
        canvas.drawRightString(A4[0] - 2 * cm, 1.1 * cm, number)
        canvas.restoreState()

    buffer = io.BytesIO()
    pdf = _Doc(buffer, pagesize=A4, leftMargin=2 * cm, rightMargin=2 * cm, topMargin=1.8 * cm, bottomMargin=1.8 * cm,
               title=title, author=_("Steward for %(organization)s") % {"organization": export["organization"]["name"]},
               subject=_("EU AI Act Annex IV technical documentation; NIST AI RMF evidence"),
               creator="Steward compliance export")
    pdf.build(builder.story, onFirstPage=page, onLaterPages=page)
    return buffer.getvalue()
