"""In real Chromium: an owner compresses the sentiment model from its page, follows the job, reads what
int8 cost beside the source, and exports it to ONNX; an admin tightens the compression policy and the reviewer sees why the
version is held."""

from __future__ import annotations

import pytest

from inference.models import ModelVersion
from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.apis.test_compressions import sst2_rows
from tests.inference.factories import serve_model
from tests.portal.accounts.factories import OrganizationFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_owner_compresses_from_the_model_page_and_the_policy_holds_it(page, celery_worker, sentiment_bytes,
                                                                       tmp_path) -> None:
    served = serve_model(OrganizationFactory(name="Newsroom"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    data = tmp_path / "heldout.csv"
    data.write_text("text,label\n" + "".join(f"\"{text}\",{label}\n" for text, label in sst2_rows(40)))
    sign_in(page, served.actors["owner"].user.username)
    page.goto("/models/sentiment/?v=1")
    page.click("[data-testid=compress] summary")
    # no evaluation yet: the default data is refused with a sentence, nothing is started
    page.click("[data-testid=compress] button[type=submit]")
    assert "no finished evaluation" in page.inner_text(".messages")
    page.click("[data-testid=compress] summary")
    page.select_option("#compress-dataset", "upload")
    page.set_input_files("#compress-file", str(data))
    page.click("[data-testid=compress] button[type=submit]")
    page.wait_for_selector("[data-testid=compression-result]", timeout=300_000)
    assert "accuracy" in page.inner_text("[data-testid=compression-result]")
    page.screenshot(path=str(SHOTS / "compression.png"), full_page=True)
    page.click("[data-testid=compression-version]")
    measured = page.inner_text("[data-testid=compression-measured]")
    assert "Accuracy on 40 held-out rows" in measured and "One text alone" in measured
    assert "transformers-int8" in page.inner_text("main")
    # the same weights exported to ONNX, chosen in the form: measured as losing nothing
    page.goto("/models/sentiment/?v=1")
    page.click("[data-testid=compress] summary")
    page.select_option("#compress-method", "onnx-float32")
    page.select_option("#compress-dataset", "upload")
    page.set_input_files("#compress-file", str(data))
    page.click("[data-testid=compress] button[type=submit]")
    page.wait_for_selector("[data-testid=compression-result]", timeout=300_000)
    page.click("[data-testid=compression-version]")
    assert "Compressed (onnx-float32)" in page.inner_text("[data-testid=compression-headline]")
    assert "(+0.00 points)" in page.inner_text("[data-testid=compression-headline]")
    exported = ModelVersion.objects.get(model__organization=served.org, framework="onnx")
    # an admin allows no loss of accuracy at all: the draft's page then says whether it is held, and why
    compressed = ModelVersion.objects.get(model__organization=served.org, framework="transformers-int8")
    page.context.clear_cookies()
    sign_in(page, served.actors["admin"].user.username)
    page.goto("/compression/policy/")
    page.fill("#max_accuracy_drop", "0")
    page.click("[data-testid=compression-policy-form] button[type=submit]")
    assert "Compression policy saved" in page.inner_text(".messages")
    assert page.input_value("#max_accuracy_drop") == "0.0"
    page.goto(f"/models/sentiment/?v={compressed.version}")
    dropped = compressed.metrics["compression"]["accuracy_delta_points"] < 0
    assert (page.locator("[data-testid=compression-beyond]").count() == 1) == dropped
    if dropped:
        assert "held-out accuracy dropped by" in page.inner_text("[data-testid=compression-beyond]")
    page.goto(f"/models/sentiment/?v={exported.version}")  # the lossless export stays within even that
    assert page.locator("[data-testid=compression-headline]").count() == 1
    assert page.locator("[data-testid=compression-beyond]").count() == 0
