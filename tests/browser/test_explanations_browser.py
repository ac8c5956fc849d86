"""In real Chromium: why a prediction came out as it did, and what drives a model over a sample."""

from __future__ import annotations

import pytest

from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.factories import serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_consumer_explains_a_text_prediction_from_the_playground(page, celery_worker, sentiment_bytes) -> None:
    # given: the real sentiment model, served
    served = serve_model(OrganizationFactory(name="Reviews Ltd"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    sign_in(page, served.actors["consumer"].user.username)
    # when: a prediction in the playground, then "Explain this prediction"
    page.goto("/models/sentiment/playground/")
    page.fill("#text", "a dull and boring film")
    page.click("[data-testid=playground-form] button[type=submit]")
    assert page.wait_for_selector("[data-testid=prediction-label]").inner_text().strip() == "NEGATIVE"
    page.click("[data-testid=explain]")
    # then: the heat map over the words, its legend, the values on hover and in a table, the summary
    heat = page.wait_for_selector("[data-testid=heat-map]", timeout=120_000)
    assert page.locator("header.topbar").count() == 1
    words = page.locator("[data-testid=heat-map] span.w")
    assert [words.nth(i).inner_text() for i in range(words.count())] == ["a", "dull", "and", "boring", "film"]
    titles = [words.nth(i).get_attribute("title") for i in range(words.count())]
    assert all("NEGATIVE" in t and (": +" in t or ": -" in t or ": 0" in t) for t in titles)
    assert "towards NEGATIVE" in page.inner_text(".legend")
    assert heat.query_selector("span.w.pos") is not None  # at least one word pushes towards NEGATIVE
    table = page.inner_text("[data-testid=attribution-table]")
    assert "dull" in table and "boring" in table
    summary = page.inner_text("[data-testid=explanation-summary]")
    assert "pushed towards NEGATIVE" in summary and ("'dull'" in summary or "'boring'" in summary)
    facts = page.inner_text("[data-testid=explanation-facts]")
    assert "exact" in facts and "residual" in facts.lower() and "audit entry" in facts
    assert "E[f(x)]" in facts  # as rendered: no upper-case styling turns it into E[F(X)]
    page.screenshot(path=str(SHOTS / "explanation-text.png"), full_page=True)
    # the prediction page lists it
    page.click("text=← Prediction")
    assert "exact" in page.inner_text("main") and page.locator("[data-testid=explain-row]").count() == 1


def test_owner_explains_a_tabular_row_and_computes_a_global_explanation(page, celery_worker, tmp_path) -> None:
    served = serve_model(OrganizationFactory(name="Credit Co"), name="credit", task="tabular-classification",
                         archive=tiny_tabular_archive(tmp_path / "m"))
    sign_in(page, served.actors["owner"].user.username)
    # a local explanation: the waterfall from the base value to the output
    page.goto("/models/credit/playground/")
    page.fill("#f-income", "12")
    page.click("[data-testid=playground-form] button[type=submit]")
    page.wait_for_selector("[data-testid=prediction-label]")
    page.click("[data-testid=explain]")
    page.wait_for_selector("[data-testid=waterfall] svg.chart", timeout=60_000)
    assert page.locator("[data-testid=waterfall] rect.xbar-up, [data-testid=waterfall] rect.xbar-down").count() == 2
    assert "base value" in page.inner_html("[data-testid=waterfall]")
    table = page.inner_text("[data-testid=attribution-table]")
    assert "income" in table and "12" in table
    # the budget as it was spent: coalitions, not the model's rows against the background
    budget = page.inner_text("[data-testid=budget]")
    assert "every coalition of the 2 features: 4 evaluated" in budget and "background row" in budget
    # a global explanation from the model card, over an uploaded sample, with live progress
    data = tmp_path / "sample.csv"
    data.write_text("income,region\n" + "".join(f"{i * 9 % 100},{'north' if i % 2 else 'south'}\n" for i in range(30)))
    page.goto("/models/credit/")
    assert "No global explanation" in page.inner_text("[data-testid=global-explanations]")
    page.select_option("#id_dataset", "upload")
    page.set_input_files("#id_file", str(data))
    page.fill("#id_sample_size", "30")
    page.click("[data-testid=global-form] button[type=submit]")
    page.wait_for_selector("[data-testid=global-result]", timeout=60_000)
    assert page.inner_text("[data-testid=global-status]").strip() == "done"
    ranking = page.inner_text("[data-testid=global-table]")
    assert ranking.index("income") < ranking.index("region")
    assert page.locator("[data-testid=global-result] svg.chart rect.cbar").count() == 2
    page.screenshot(path=str(SHOTS / "explanation-global.png"), full_page=True)
    # the card shows it, and lists it as evidence
    page.goto("/models/credit/")
    assert page.locator("[data-testid=global-explanations] svg.chart").count() == 1
    assert "most influential 'income'" in page.inner_text("[data-testid=evidence]")
