"""An auditor searches the log, signs a checkpoint and opens an entry with its verified proof."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.accounts.roles import Role
from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.portal.accounts.factories import OrganizationFactory, member, token_for
from tests.waits import patience

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_auditor_reads_an_entry_and_its_proof(page) -> None:
    # given: some activity in the organisation
    org = OrganizationFactory(name="Acme Bank")
    auditor = member(Role.AUDITOR, org, username="audrey")
    owner = member(Role.OWNER, org, username="oscar")
    token_for(owner, org, name="pricing service")

    # when: the auditor opens the log and searches for token events
    sign_in(page, "audrey")
    page.click("nav >> text=Audit log")
    page.fill("#id_action", "token.")
    page.click("[data-testid=audit-search] button[type=submit]")
    rows = page.locator("[data-testid=audit-entries] tbody tr")
    expect(rows).to_have_count(1, timeout=patience(15) * 1000)  # the search's page, loaded
    assert "token.created" in rows.first.inner_text()

    # and signs a checkpoint so that the entry is covered, then opens it
    page.click("text=Sign a checkpoint now")
    page.fill("#id_action", "token.")
    page.click("[data-testid=audit-search] button[type=submit]")
    page.locator("[data-testid=audit-entries] tbody tr a").first.click()

    # then: the entry, redacted payload and a verified proof
    page.wait_for_selector("[data-testid=proof-ok]")
    assert "pricing service" in page.inner_text("main")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "audit-entry.png"), full_page=True)
    assert auditor.username == "audrey"


def test_consumer_has_no_audit_log(page) -> None:
    member(Role.CONSUMER, OrganizationFactory(), username="connie")
    sign_in(page, "connie")
    assert page.locator("nav >> text=Audit log").count() == 0
    response = page.goto("/audit/")
    assert response.status == 403
