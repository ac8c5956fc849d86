"""In real Chromium: a reviewer approves a version; a consumer predicts in the playground and runs a job."""

from __future__ import annotations

import pytest

from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.factories import CARD, serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_reviewer_approves_and_consumer_predicts(page, celery_worker, tmp_path) -> None:
    # given: a served model, and a second version submitted by its owner
    import io

    from inference.services.registry import model_version_transition
    from inference.services.uploads import model_version_register

    served = serve_model(OrganizationFactory(name="Acme Bank"), name="credit", task="tabular-classification",
                         archive=tiny_tabular_archive(tmp_path / "v1"))
    v2 = model_version_register(actor=served.actors["owner"], name="credit", task="tabular-classification",
                                archive=io.BytesIO(tiny_tabular_archive(tmp_path / "v2", bias=1.0)), card=CARD)
    model_version_transition(actor=served.actors["owner"], version=v2, action="submit")

    # when: the reviewer opens the model card and approves version 2
    sign_in(page, served.actors["reviewer"].user.username)
    page.click("nav >> text=Models")
    page.click("text=credit")
    page.click("text=v2")
    assert "submitted" in page.inner_text("[data-testid=status]")
    page.fill("#comment", "evaluation reviewed")
    page.click("[data-testid=review-form] >> text=Approve")
    # then: the card shows it approved, with the history
    page.wait_for_selector("[data-testid=status]:has-text('approved')")
    lifecycle = page.inner_text("[data-testid=lifecycle]")
    assert "submitted → approved" in lifecycle and "evaluation reviewed" in lifecycle
    page.screenshot(path=str(SHOTS / "model-card.png"), full_page=True)
    page.click("text=Sign out")

    # when: a consumer predicts in the playground (production is still v1)
    sign_in(page, served.actors["consumer"].user.username)
    page.goto("/models/credit/playground/")
    page.fill("#f-income", "95")
    page.select_option("#f-region", "south")
    page.click("[data-testid=playground-form] button[type=submit]")
    # then
    label = page.wait_for_selector("[data-testid=prediction-label]")
    assert label.inner_text().strip() == "grant"
    assert "Receipt: audit entry" in page.inner_text("#result")
    page.screenshot(path=str(SHOTS / "playground.png"), full_page=True)

    # and out-of-range input is stopped in the browser (the schema's range is on the field) ...
    page.fill("#f-income", "5000")
    assert page.eval_on_selector("#f-income", "el => el.validity.rangeOverflow")
    # ... and, sent anyway, answered with the server's message
    page.eval_on_selector("#f-income", "el => el.removeAttribute('max')")
    page.click("[data-testid=playground-form] button[type=submit]")
    page.wait_for_selector("#result [role=alert]")
    assert "between" in page.inner_text("#result [role=alert]")

    # when: the consumer runs a batch job from a CSV
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("income,region\n" + "".join(f"{i},north\n" for i in range(200)))
    page.goto("/jobs/")
    page.set_input_files("#id_file", str(csv_path))
    page.click("[data-testid=job-form] button[type=submit]")
    # then: progress reaches the end and results can be downloaded
    page.wait_for_selector("text=Results (CSV)", timeout=60_000)
    assert "200 / 200" in page.inner_text("#job-rows")
    page.screenshot(path=str(SHOTS / "jobs.png"), full_page=True)
