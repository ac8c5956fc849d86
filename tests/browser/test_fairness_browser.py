"""In real Chromium: an owner runs a bias report from the model card and reads it; the gate shows on approval."""

from __future__ import annotations

import io

import pytest

from tests.audit.fairness.test_reports_api import evaluation_rows
from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.factories import CARD, serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_owner_runs_a_bias_report_and_the_reviewer_sees_the_gate(page, celery_worker, tmp_path) -> None:
    # given: a served model, an organisation that requires passing reports, a submitted version 2
    from audit.fairness.services import fairness_policy_update
    from inference.services.registry import model_version_transition
    from inference.services.uploads import model_version_register

    served = serve_model(OrganizationFactory(name="Fair Bank"), name="credit", task="tabular-classification",
                         archive=tiny_tabular_archive(tmp_path / "v1"))
    fairness_policy_update(actor=served.actors["admin"], require_passing_report=True)
    v2 = model_version_register(actor=served.actors["owner"], name="credit", task="tabular-classification",
                                archive=io.BytesIO(tiny_tabular_archive(tmp_path / "v2", bias=0.5)), card=CARD)
    model_version_transition(actor=served.actors["owner"], version=v2, action="submit")
    rows = evaluation_rows()
    data = tmp_path / "eval.csv"
    data.write_text("income,region,group,outcome\n" + "".join(
        f"{r['income']},{r['region']},{r['group']},{r['outcome']}\n" for r in rows))

    # when: the owner opens the card of v2, follows the evidence link and runs a report
    sign_in(page, served.actors["owner"].user.username)
    page.goto("/models/credit/?v=2")
    evidence = page.inner_text("[data-testid=evidence]")
    assert "bias report" in evidence.lower() and "none yet" in evidence and "blocks approval" in evidence
    page.click("[data-testid=evidence] tr:has-text('Bias report') >> text=none yet")
    page.set_input_files("#id_file", str(data))
    page.fill("#id_label_column", "outcome")
    page.fill("#id_sensitive_columns", "group")
    page.fill("#id_favourable_label", "grant")
    page.click("[data-testid=report-form] button[type=submit]")
    # then: progress, then the report with its chart, tables and verdict
    verdict = page.wait_for_selector("[data-testid=verdict]", timeout=60_000)
    assert page.locator("header.topbar").count() == 1  # the finished report replaced the page, not nested in it
    assert verdict.inner_text().strip() == "fail"
    axis = page.inner_text("[data-testid=axis]")
    assert "demographic_parity_ratio" in axis and "Four-fifths rule" in axis and "fails" in axis
    assert page.locator("[data-testid=axis] svg.chart rect.cbar").count() == 2
    assert "four-fifths line" in page.inner_html("[data-testid=axis] svg.chart")
    page.screenshot(path=str(SHOTS / "bias-report.png"), full_page=True)
    with page.expect_download() as download:
        page.click("a.button:text-is('CSV')")
    assert download.value.suggested_filename.endswith(".csv")
    page.click("text=Sign out")

    # when: the reviewer opens v2: approval is refused, and the page says why
    sign_in(page, served.actors["reviewer"].user.username)
    page.goto("/models/credit/?v=2")
    blocked = page.inner_text("[data-testid=approval-blocked]")
    assert "requires a passing bias report" in blocked and "is fail" in blocked
    page.click("[data-testid=review-form] >> text=Approve")
    assert "requires a passing bias report" in page.inner_text(".messages")
    assert "submitted" in page.inner_text("[data-testid=status]")


def test_owner_probes_the_assistant_for_bias_and_reads_the_charts(page, assistant, sentiment_bytes,
                                                                   moderation_bytes) -> None:
    # given: the demo assistant, with the sentiment and moderation models served beside it
    from audit.fairness.services import fairness_policy_update

    serve_model(assistant.org, name="sentiment", task="text-classification", archive=sentiment_bytes)
    serve_model(assistant.org, name="moderation", task="text-classification", archive=moderation_bytes)
    fairness_policy_update(actor=assistant.actors["admin"], min_group_size=2, bootstrap_resamples=200)
    # when: the owner runs a small BOLD probe from the version's bias page
    sign_in(page, assistant.actors["owner"].user.username)
    page.goto("/models/assistant/versions/1/bias/")
    page.select_option("#id_dataset", "demo-bold")
    page.select_option("#id_domain", "race")
    page.fill("#id_prompts_per_group", "2")
    page.fill("#id_completions_per_prompt", "1")
    page.fill("#id_max_tokens", "8")
    page.click("[data-testid=report-form] button[type=submit]")
    # then: the report, with a chart per quantity (a bar per group), the gaps and what the model wrote
    page.wait_for_selector("[data-testid=verdict]", timeout=300_000)
    assert page.locator("[data-testid=probe-chart]").count() == 3
    assert page.locator("[data-testid=probe-chart]").first.locator("svg.chart rect.cbar").count() == 4
    gaps = page.inner_text("[data-testid=disparities]")
    assert "probe_sentiment_gap" in gaps and "probe_toxicity_rate_gap" in gaps
    assert "African Americans" in page.inner_text("[data-testid=groups]")
    assert page.locator("[data-testid=samples] tbody tr").count() == 8  # 2 prompts x 1 completion, 4 groups
    page.screenshot(path=str(SHOTS / "bias-probe.png"), full_page=True)
