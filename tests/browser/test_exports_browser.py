"""In real Chromium: an auditor generates a compliance export from the model card, reads its issues and
mapping, downloads the PDF and the bundle; an owner reads it but cannot generate one."""

from __future__ import annotations

import io
import zipfile

import pytest
from pypdf import PdfReader

from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.factories import serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_auditor_generates_reads_and_downloads_an_export(page, celery_worker, tmp_path) -> None:
    # given
    served = serve_model(OrganizationFactory(name="Export Bank"), name="credit", task="tabular-classification",
                         archive=tiny_tabular_archive(tmp_path / "v1"))
    sign_in(page, served.actors["auditor"].user.username)
    # when: from the model card's evidence, to the version's exports, generate one
    page.goto("/models/credit/?v=1")
    assert "none yet" in page.inner_text("[data-testid=evidence] tr:has-text('Compliance export')")
    page.click("[data-testid=evidence] tr:has-text('Compliance export') >> text=none yet")
    assert page.input_value("#id_period_end")  # today, prefilled
    page.click("[data-testid=export-form] button[type=submit]")
    # then: progress, then the finished export
    issues = page.wait_for_selector("[data-testid=issues]", timeout=60_000)
    assert page.locator("header.topbar").count() == 1
    assert "No finished bias report" in issues.inner_text()
    mapping = page.inner_text("[data-testid=mapping]")
    assert "Annex IV" in mapping and "2(g)" in mapping and "MEASURE 2.11" in mapping and "held outside Steward" in mapping
    assert page.locator("[data-testid=mapping] .badge.coverage-missing").count() >= 2
    assert "python -m audit.log.verify credit-v1-export-1.zip" in page.inner_text("[data-testid=verify]")
    page.screenshot(path=str(SHOTS / "compliance-export.png"), full_page=True)
    pdf = page.request.get(page.get_attribute("a:text-is('Read the PDF')", "href"))
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    assert "9. Audit log" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body())).pages)
    with page.expect_download() as download:
        page.click("a:has-text('Download the bundle')")
    assert download.value.suggested_filename == "credit-v1-export-1.zip"
    with zipfile.ZipFile(download.value.path()) as bundle:
        assert {"report.pdf", "evidence.json", "manifest.json", "manifest.sig"} <= set(bundle.namelist())
    page.click("text=Sign out")

    # when: an owner opens the exports: listed and readable, but no form to generate one
    sign_in(page, served.actors["owner"].user.username)
    page.goto("/exports/")
    assert "credit v1 #1" in page.inner_text("[data-testid=exports]")
    page.goto("/models/credit/versions/1/exports/")
    assert page.locator("[data-testid=export-form]").count() == 0
