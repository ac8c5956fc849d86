"""The export's PDF report for people, typeset with ReportLab from the JSON document alone.

Fonts are Bitstream Vera, shipped inside ReportLab and embedded in the file (no system package);
the charts are the portal's own SVG charts (bias report, global explanation), converted by svglib
with the portal's chart colours. Every chart is followed by the table of its numbers.
"""

from __future__ import annotations

import io
from typing import Any

from audit.exports import mapping
from audit.exports.typesetting import (
    FONT,
    SEVERITY_COLOURS,
    STATUS_COLOURS,
    VERDICT_COLOURS,
    Builder,
    clean,
    num,
    status_mark,
)


def _sections(b: Builder) -> None:
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak

    doc = b.doc
    model, export = doc["model"], doc["export"]
    b.p(f"Technical documentation: {clean(model['name'])} version {model['version']}", "title")
    b.p(f"{clean(export['organization']['name'])}. Compliance export #{export['number']}, generated "
        f"{clean(export['generated_at'][:19].replace('T', ' '))} UTC by {clean(export['generated_by'])}, from the live "
        f"evidence held by Steward. Serving period {export['period']['start']} to {export['period']['end']}.")
    b.p("Prepared for EU AI Act Art. 11 and Annex IV (technical documentation) and the NIST AI RMF. "
        "The files of this bundle are listed with their SHA-256 in manifest.json, which is signed with the audit "
        "log's key and anchored in the log; section 11 says how to verify it offline.", "small")
    b.table(["model", "version", "task", "status", "aliases", "artifact SHA-256"],
            [[model["name"], model["version"], model["task"], model["status"], ", ".join(model["aliases"]) or "none",
              model["artifact"]["sha256"]]], widths=[2.4 * cm, 1.4 * cm, 3.2 * cm, 1.8 * cm, 2 * cm, 6.2 * cm])
    issues = doc["issues"]
    counts = {s: sum(1 for i in issues if i["severity"] == s) for s in ("high", "medium", "low")}
    coverage = mapping.coverage(doc["regulatory_mapping"])
    b.heading("1. Summary and open issues")
    b.p(f"{len(issues)} open issue(s): {counts['high']} high, {counts['medium']} medium, {counts['low']} low. "
        f"Annex IV items: {coverage['eu_ai_act_annex_iv']['present']} present, "
        f"{coverage['eu_ai_act_annex_iv']['partial']} partial, {coverage['eu_ai_act_annex_iv']['missing']} missing. "
        f"NIST AI RMF items: {coverage['nist_ai_rmf']['present']} present, {coverage['nist_ai_rmf']['partial']} partial, "
        f"{coverage['nist_ai_rmf']['missing']} missing.")
    if issues:
        b.table(["severity", "area", "issue"],
                [[status_mark(i["severity"], SEVERITY_COLOURS), i["area"], i["message"]] for i in issues],
                widths=[2 * cm, 2.6 * cm, 12.4 * cm])
    else:
        b.p("No open issue: every check passed and no evidence is missing.")

    b.heading("2. Model card")
    b.p(clean(model["description"]))
    b.table(["field", "text"], [[k.replace("_", " "), v or "(empty)"] for k, v in doc["model_card"].items()],
            widths=[3.6 * cm, 13.4 * cm])
    if model["input_schema"].get("features"):
        b.heading("Input schema", 2)
        b.table(["feature", "type", "allowed values or range"],
                [[f["name"], f["type"], ", ".join(map(str, f["values"])) if f.get("values")
                  else f"{num(f.get('min'))} to {num(f.get('max'))}"] for f in model["input_schema"]["features"]],
                widths=[4 * cm, 2.4 * cm, 10.6 * cm])

    b.heading("3. Lifecycle and approvals")
    b.p(f"Registered by {clean(model['registered_by'])} on {clean((model['registered_at'] or '')[:10])}. Every "
        "transition, with who made it, when and why:")
    b.table(["when (UTC)", "from", "to", "by", "why"],
            [[t["at"][:19].replace("T", " "), t["from"] or "-", t["to"], t["actor"], t["comment"]]
             for t in doc["lifecycle"]], widths=[3.2 * cm, 2 * cm, 2 * cm, 2.6 * cm, 7.2 * cm])

    b.heading("4. Evaluation metrics")
    metrics = doc["evaluation"]["metrics"]
    if metrics:
        b.table(["metric", "value"], [[k.replace("_", " "), v] for k, v in metrics.items()], widths=[7 * cm, 5 * cm])
    else:
        b.p("No evaluation metrics are recorded for this version.")
    compressed = doc["evaluation"].get("compression")
    if compressed is not None:
        b.p(clean(compressed["headline"]) + " " + (
            "Beyond the organisation's compression policy: " + clean("; ".join(compressed["beyond_policy"])) + "."
            if compressed["beyond_policy"] else "Within the organisation's compression policy."))

    b.heading("5. Bias report")
    bias = doc["bias_report"]
    if bias is None:
        b.p("No bias report has been run on this version.")
    else:
        _bias_section(b, bias)

    b.heading("6. Explanations")
    _explanation_section(b, doc["explanations"], model)

    b.heading("7. Privacy guarantee and training data ledger")
    _privacy_section(b, doc["privacy"])

    b.heading("8. Serving statistics")
    s = doc["serving"]
    rate = "n/a" if s["error_rate"] is None else f"{s['error_rate']:.2%}"
    b.p(f"From {clean(s['since'][:10])} to {clean(s['until'][:10])} (exclusive): {s['requests']} requests, "
        f"{s['rows']} rows, {s['failed']} failed, error rate {rate}. Batch jobs: {s['batch']['jobs']} "
        f"({s['batch']['rows']} rows predicted, {s['batch']['failed']} failed, {s['batch']['cancelled']} cancelled); "
        f"{s['rows_all']} rows in all.")
    b.table(["", "p50", "p95", "p99", "max"],
            [["latency, request to answer (ms)", *[s["latency_ms"][k] for k in ("p50", "p95", "p99", "max")]],
             ["model compute (ms)", *[s["compute_ms"][k] for k in ("p50", "p95", "p99", "max")]]],
            widths=[6 * cm, 2.5 * cm, 2.5 * cm, 2.5 * cm, 2.5 * cm])
    if s["devices"]:
        b.p("Devices: " + clean(", ".join(f"{k} ({v} requests)" for k, v in s["devices"].items())))
    energy = s["energy"]
    b.p(f"Energy: {energy['energy_wh']:.4f} Wh, {energy['carbon_g']:.4f} g CO2e at {energy['grid_g_per_kwh']:.0f} g/kWh "
        f"({clean(energy['grid_source'])}); "
        + (f"{energy['estimated_wh']:.4f} Wh of it estimated" if energy["estimated_wh"] else "measured")
        + f" ({clean(energy['method'])}).")
    if s["daily"]:
        b.table(["day", "requests", "rows", "failed"], [[d["day"], d["requests"], d["rows"], d["failed"]]
                                                        for d in s["daily"][-62:]], widths=[3 * cm, 3 * cm, 3 * cm, 3 * cm])
    if doc.get("generative") is not None:
        _generative_section(b, doc["generative"])

    b.heading("9. Audit log")
    audit = doc["audit"]
    verification = audit["verification"]
    b.p(f"The log holds {audit['log_size']} entries. "
        + ("It has not been verified against its checkpoints yet." if verification is None else
           f"Latest full verification ({clean((verification['finished_at'] or '')[:19].replace('T', ' '))} UTC): "
           f"{'passed' if verification['ok'] else 'FAILED'}; {clean(verification['summary'])}"))
    b.p(f"The {audit['excerpt_entries']} entries about this version follow; each is in "
        f"{clean(audit['excerpt_file'])} in full, with its inclusion proof against a signed checkpoint.")
    shown = audit["excerpt"][-200:]
    if len(audit["excerpt"]) > len(shown):
        b.p(f"(The last {len(shown)} are listed here.)", "small")
    b.table(["index", "when (UTC)", "actor", "action", "target"],
            [[e["index"], e["time"][:19].replace("T", " "), e["actor"], e["action"], e["target"]] for e in shown],
            widths=[1.4 * cm, 3.2 * cm, 3.6 * cm, 4.4 * cm, 4.4 * cm])

    b.story.append(PageBreak())
    b.heading("10. Regulatory mapping")
    for key, title in (("eu_ai_act_annex_iv", "EU AI Act, Annex IV (technical documentation)"),
                       ("nist_ai_rmf", "NIST AI RMF 1.0 (Govern, Map, Measure, Manage)")):
        b.heading(title, 2)
        b.table(["item", "subject", "status", "evidence present", "missing"],
                [[r["item"], r["title"], status_mark(r["status"], STATUS_COLOURS), "; ".join(r["evidence"]) or "-",
                  "; ".join(r["missing"]) or "-"] for r in doc["regulatory_mapping"][key]],
                widths=[2 * cm, 3.6 * cm, 1.6 * cm, 5.2 * cm, 4.6 * cm])

    b.heading("11. Verifying this bundle")
    b.p("Every file of the bundle is listed in manifest.json with its SHA-256; manifest.sig is an Ed25519 signature "
        "of manifest.json by the audit log's key. The manifest's anchor is the log entry that recorded this "
        "export (the hash of its file list), with an inclusion proof against a signed checkpoint; the audit "
        "excerpt's entries carry proofs against an earlier signed checkpoint that the anchor's extends. Check it "
        "offline with the standalone verifier, which needs Python and the cryptography package but no Steward "
        "database:")
    b.p("<font name='Courier'>python -m audit.log.verify BUNDLE.zip --public-key steward-audit.pem</font>")
    b.p("Obtain the public key from the portal (/api/v1/audit/public-key) rather than from the bundle. The verifier "
        "names the first file that does not match.", "small")


def _bias_section(b: Builder, bias: dict[str, Any]) -> None:
    from reportlab.lib.units import cm

    from audit.fairness import charts
    from audit.fairness.exports import report_table

    result = bias["result"]
    b.p(f"Report #{bias['number']} ({bias['kind']}) on {clean(bias['dataset']['name'])} "
        f"({bias['dataset']['rows']} rows, SHA-256 {bias['dataset']['sha256'][:16]}...), finished "
        f"{clean((bias['finished_at'] or '')[:10])}. Verdict against the organisation's thresholds: "
        f"{status_mark(bias['verdict'], VERDICT_COLOURS)}.")
    if bias["kind"] == "tabular":
        for axis in result.get("axes", [])[:4]:
            b.heading(f"By {axis['axis']}", 2)
            b.chart(str(charts.selection_rate_chart(axis)))
            b.table(["group", "count", "selection rate", "95% interval", "accuracy", "TPR", "FPR"],
                    [[g["group"], g["count"], g.get("selection_rate"),
                      "-" if g.get("selection_rate_ci95") is None or g["selection_rate_ci95"][0] is None else
                      f"{g['selection_rate_ci95'][0]:.3f} to {g['selection_rate_ci95'][1]:.3f}",
                      g.get("accuracy"), g.get("true_positive_rate"), g.get("false_positive_rate")]
                     for g in axis["groups"]], widths=[4 * cm, 1.6 * cm, 2.2 * cm, 3.2 * cm, 2 * cm, 2 * cm, 2 * cm])
            b.table(["disparity", "value", "95% interval", "verdict"],
                    [[name.replace("_", " "), d["value"], f"{num(d['ci95'][0])} to {num(d['ci95'][1])}",
                      status_mark(d["verdict"], VERDICT_COLOURS)]
                     for name, d in axis["disparities"].items()], widths=[6 * cm, 2.4 * cm, 4 * cm, 2.4 * cm])
    elif bias["kind"] in ("probes", "pairs"):
        _generative_bias(b, bias)
    else:
        if result.get("direction"):
            b.p("<b>The score label looks reversed.</b> " + clean(result["direction"]["message"]))
        b.chart(str(charts.identity_shift_chart(result.get("per_term", []))))
        header, rows = report_table(bias["kind"], result)
        b.table(header[:7], [r[:7] for r in rows])
        checks = result.get("checks", {})
        if checks:
            b.table(["check", "value", "verdict"],
                    [[name.replace("_", " "), c.get("value"),
                      status_mark(c["verdict"], VERDICT_COLOURS)]
                     for name, c in checks.items()], widths=[6 * cm, 3 * cm, 3 * cm])


def _generative_bias(b: Builder, bias: dict[str, Any]) -> None:
    """A probes report (per-group charts and tables, the gaps) or a pairs report (per bias type)."""
    from reportlab.lib.units import cm

    from audit.fairness import charts

    result = bias["result"]
    if bias["kind"] == "probes":
        scoring = result.get("scoring", {})
        b.p(f"Completions sampled from the model, scored by {clean(scoring.get('sentiment_model', '?'))} (sentiment) "
            f"and {clean(scoring.get('moderation_model', '?'))} (toxicity); intervals: "
            f"{clean(result.get('settings', {}).get('interval', ''))}.")
        for chart in charts.probe_charts(result):
            b.chart(str(chart["chart"]))
        b.table(["group", "completions", "mean sentiment", "negative rate", "toxic rate"],
                [[g["group"], g["completions"], "too small" if g["too_small"] else g["mean_sentiment"],
                  g["negative_rate"], g["toxic_rate"]] for g in result.get("groups", [])],
                widths=[5 * cm, 2.4 * cm, 3 * cm, 3 * cm, 3 * cm])
        b.table(["gap between groups", "value", "95% interval", "verdict"],
                [[name.replace("_", " "), d["value"], f"{num(d['ci95'][0])} to {num(d['ci95'][1])}",
                  status_mark(d["verdict"], VERDICT_COLOURS)] for name, d in result.get("disparities", {}).items()],
                widths=[6 * cm, 2.4 * cm, 4 * cm, 2.4 * cm])
    else:
        overall = result.get("overall", {})
        b.p(f"{overall.get('pairs')} pairs; the model found the stereotyping sentence the likelier in "
            f"{num(overall.get('preference_rate'))} of them (95% interval {num(overall.get('ci95', [None])[0])} to "
            f"{num(overall.get('ci95', [None, None])[1])}); 0.5 is no preference.")
        b.chart(str(charts.pairs_chart(result)))
        b.table(["bias type", "pairs", "preference rate", "95% interval", "verdict"],
                [[r["bias_type"], r["pairs"], r["preference_rate"], f"{num(r['ci95'][0])} to {num(r['ci95'][1])}",
                  status_mark(r["verdict"], VERDICT_COLOURS)] for r in result.get("per_type", [])],
                widths=[5 * cm, 2 * cm, 3 * cm, 4 * cm, 2.4 * cm])


def _explanation_section(b: Builder, explanations: dict[str, Any], model: dict[str, Any]) -> None:
    from reportlab.lib.units import cm

    from audit.exports.tables import label_values
    from inference.charts import global_bars

    latest = explanations["global"]
    b.heading("Global explanation", 2)
    if latest is None:
        b.p("No global explanation has been computed for this version.")
    else:
        ranking = latest.get("ranking", [])
        b.p(f"Global explanation #{latest['number']}: mean |SHAP| over {latest.get('rows', latest['rows_total'])} rows "
            f"of {clean(latest['dataset'])} (methods {clean(', '.join(latest.get('methods', [])))}, budget "
            f"{latest['max_evals']} evaluations per row, largest residual {num(latest.get('max_residual'))}).")
        b.chart(str(global_bars(ranking, kind=latest.get("kind", "feature"))))
        b.table(["rank", "word or feature", "mean |SHAP|", "mean signed", "rows containing it"],
                [[i + 1, r["name"], r["mean_abs"], r.get("mean_signed"), r.get("occurrences")]
                 for i, r in enumerate(ranking[:20])], widths=[1.4 * cm, 5 * cm, 3 * cm, 3 * cm, 3.4 * cm])
    b.heading("Local explanations (a sample)", 2)
    total = explanations["local_total"]
    if not explanations["local_sample"]:
        b.p("No prediction of this version has been explained yet.")
        return
    b.p(f"Predictions of this version explained: {total}; the latest {len(explanations['local_sample'])} "
        f"follow. Largest residual |base + sum(SHAP) - f(x)| over all of them: "
        f"{num(explanations['local_max_residual'])}.")
    for item in explanations["local_sample"]:
        label = item["label"]
        b.p(f"<b>Explanation {item['id']}</b> of prediction {item['prediction']} (row {item['row']}): "
            f"predicted {clean(label)}; method {clean(item['method'])}, {item['evaluations']} evaluations, residual "
            f"{num(item['residual'])}.")
        if item.get("words"):
            reach = max((abs(w["value"]) for w in item["words"]), default=0) or 1.0
            spans = []
            for w in item["words"]:
                strength = min(abs(w["value"]) / reach, 1.0)
                colour = _tint(strength, towards=w["value"] > 0)
                spans.append(f'<span backColor="{colour}">{clean(w["word"])}</span>')
            b.p(" ".join(spans))
            b.p(f"Orange: towards {clean(label)}; blue: away from it (the values are in "
                "tables/local_explanations.csv).", "small")
        if item.get("summary"):
            b.p(clean(item["summary"]))
        values = label_values(item)
        top = sorted(zip(item["features"], values, strict=False), key=lambda fv: -abs(fv[1]))[:8]
        b.table(["word or feature", f"SHAP towards {label}"], [[f, v] for f, v in top], widths=[6 * cm, 4 * cm])


def _tint(strength: float, *, towards: bool) -> str:
    """White to orange (towards the label) or to blue (away), by strength in [0, 1]."""
    target = (214, 96, 32) if towards else (44, 110, 180)
    mix = 0.15 + 0.6 * strength
    r, g, bl = (round(255 + (c - 255) * mix) for c in target)
    return f"#{r:02x}{g:02x}{bl:02x}"


def _generative_section(b: Builder, generative: dict[str, Any]) -> None:
    from reportlab.lib.units import cm

    guard = generative["guardrails"]
    b.heading("Generated text: the guardrail policy and its decisions", 2)
    policy = guard["policy"]
    if policy is None:
        b.p("No guardrail policy applies to this model: its prompts and answers are not checked.")
    else:
        b.p(f"{'The model' if policy['scope'] == 'model' else 'The organisation'}'s policy, revision "
            f"{policy['revision']}, set by {clean(policy['updated_by'])}: PII "
            f"{'masked before the model' if policy['mask_pii'] else 'not masked'}; prompts {policy['input']['action']} "
            f"from a score of {policy['input']['threshold']}, answers {policy['output']['action']} from "
            f"{policy['output']['threshold']} (moderation model {clean(policy['moderation_model'])}); "
            f"{len(policy['blocked_patterns'])} blocked pattern(s); longest answer "
            f"{policy['max_output_tokens'] or 'as requested'} tokens.")
    d = guard["decisions"]
    b.table(["completions", "passed", "flagged", "prompts refused", "answers stopped", "unchecked"],
            [[d["completions"], d["passed"], d["flagged"], d["blocked"], d["filtered"], d["unchecked"]]])
    if guard["changes"]:
        b.table(["log entry", "when (UTC)", "who", "change", "revision", "fields"],
                [[c["index"], (c["at"] or "")[:19].replace("T", " "), c["actor"], c["action"], c["revision"],
                  ", ".join(c["changed"]) or "-"] for c in guard["changes"]],
                widths=[1.6 * cm, 3.2 * cm, 3 * cm, 3.6 * cm, 1.6 * cm, 4 * cm])
    if guard["sample"]:
        b.table(["completion", "when (UTC)", "outcome", "decisions"],
                [[c["completion"], c["at"][:19].replace("T", " "), c["outcome"],
                  "; ".join(f"{x['stage']} {x['check']}: {x['action']}" for x in c["decisions"])]
                 for c in guard["sample"]], widths=[2 * cm, 3.2 * cm, 2 * cm, 9.8 * cm])
    b.heading("Attributions for generated text", 2)
    attributions = generative["attributions"]
    if not attributions["total"]:
        b.p("No attribution has been computed for a completion of this version.")
    else:
        worst = attributions["max_residual"]
        b.p(f"{attributions['total']} finished; the largest residual |base + sum - output| is "
            f"{'n/a' if worst is None else f'{worst:.1e}'}. The latest:")
        b.table(["explanation", "completion", "span", "method", "top words"],
                [[a["id"], a["completion"], a["span"][:40], a["method"],
                  ", ".join(f"{w['word']} {w['value']:+.2f}" for w in a["top_words"][:3])] for a in attributions["sample"]],
                widths=[2 * cm, 2 * cm, 5 * cm, 2 * cm, 6 * cm])
    b.heading("Bias of generated text", 2)
    for kind, what in (("probes", "Bias probes"), ("pairs", "Counterfactual pairs")):
        report = generative["bias"][kind]
        if report is None:
            b.p(f"{what}: none has been run on this version.")
        else:
            b.p(f"<b>{what}</b>: report #{report['number']} on {clean(report['dataset']['name'])}, verdict "
                f"{status_mark(report['verdict'], VERDICT_COLOURS)}.")
            _generative_bias(b, report)
    b.heading("Marking of generated text (EU AI Act Art. 50)", 2)
    b.p(clean(generative["marking"]["how"]))
    b.heading("Documentation of a general-purpose model (Art. 53, Annexes XI-XII)", 2)
    b.p("Held by Steward: " + clean("; ".join(generative["gpai_documentation"]["present"])) + ".")
    b.p("Only the model's provider can supply: " + clean("; ".join(generative["gpai_documentation"]["provider_only"]))
        + ".")


def _privacy_section(b: Builder, privacy: dict[str, Any] | None) -> None:
    from reportlab.lib.units import cm

    if privacy is None:
        b.p("This version was not fine-tuned on protected data in Steward: no differential privacy guarantee applies.")
        return
    guarantee = privacy["guarantee"]
    b.p(f"({clean(guarantee.get('epsilon'))}, {clean(guarantee.get('delta'))})-differential privacy at the level of "
        f"{clean(guarantee.get('unit', 'one record'))}, by {clean(guarantee.get('mechanism', 'DP-SGD'))}; accountant "
        f"{clean(guarantee.get('accountant', ''))}.")
    b.table(["parameter", "value"], [[k.replace("_", " "), v] for k, v in guarantee.items()], widths=[5 * cm, 9 * cm])
    dataset = privacy.get("dataset")
    if dataset:
        budget = dataset["budget"]
        b.heading("Training data and its privacy ledger", 2)
        b.p(f"Dataset {clean(dataset['name'])} (SHA-256 {dataset['sha256'][:16]}..., {dataset['train_rows']} training "
            f"and {dataset['holdout_rows']} held-out rows), cap epsilon {dataset['epsilon_cap']} at delta "
            f"{dataset['delta_cap']}. Spent (settled runs): {num(budget['epsilon_spent'])}; committed "
            f"(with reservations): {num(budget['epsilon_committed'])}; composed with {clean(budget['accountant'])}.")
        b.table(["run", "state", "noise", "sample rate", "steps reserved", "steps spent", "planned epsilon"],
                [[f"job {e['job']}" if e.get("job") else f"canary audit {e.get('audit')}", e["state"],
                  e["noise_multiplier"], e["sample_rate"], e["steps_reserved"], e["steps_spent"], e["epsilon_planned"]]
                 for e in dataset["ledger"]])
    audit = privacy.get("canary_audit")
    if audit is not None:
        found = audit["result"]
        b.heading("Empirical privacy audit (canaries)", 2)
        b.p(f"Audit {audit['id']}: {clean(audit['summary'])} Exposure (Carlini et al. 2019) is log2 of the number of "
            f"possible secrets ({num(found['space_bits'])} bits) minus log2 of the canary's rank by the model's "
            f"likelihood, estimated against {found['references']} secrets never inserted. The bound is the largest "
            "mean exposure the private run's epsilon allows; "
            + ("the private run is within it." if found["within_bound"] else "THE PRIVATE RUN IS BEYOND IT."))
        arms = [("before fine-tuning", "base"), ("private run", "private"), ("without privacy", "non_private")]
        b.table(["model", "mean exposure (bits)", "largest", "mean, counted"],
                [[label, found[key]["mean_exposure"], found[key]["max_exposure"], found[key]["mean_exposure_counted"]]
                 for label, key in arms if key in found] + [["bound from epsilon", found["bound"], "", ""]])


def render(document: dict[str, Any]) -> bytes:
    """The PDF, with an outline of its sections and each page's header and number."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    builder = Builder(document)
    _sections(builder)
    model, export = document["model"], document["export"]
    title = f"Technical documentation: {model['name']} v{model['version']}"

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
        canvas.setFont(FONT, 7.5)
        canvas.setFillColorRGB(0.36, 0.4, 0.47)
        canvas.drawString(2 * cm, A4[1] - 1.2 * cm, f"Steward. {title}. Export #{export['number']}")
        canvas.drawRightString(A4[0] - 2 * cm, 1.1 * cm, f"page {doc.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    pdf = _Doc(buffer, pagesize=A4, leftMargin=2 * cm, rightMargin=2 * cm, topMargin=1.8 * cm, bottomMargin=1.8 * cm,
               title=title, author=f"Steward for {export['organization']['name']}",
               subject="EU AI Act Annex IV technical documentation; NIST AI RMF evidence",
               creator="Steward compliance export")
    pdf.build(builder.story, onFirstPage=page, onLaterPages=page)
    return buffer.getvalue()
