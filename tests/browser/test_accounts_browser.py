"""A person signs in, switches organisation, creates and revokes a token, in real Chromium."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from portal.accounts.models import ApiToken
from portal.accounts.roles import Role
from tests.portal.accounts.factories import PASSWORD, MembershipFactory, OrganizationFactory, member
from tests.waits import patience

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.DATA_DIR) / "screenshots"


def call_api(base: str, path: str, secret: str) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_sign_in_switch_organisation_create_and_revoke_token(page, live_server) -> None:
    # given: Ada is admin of Acme Bank and consumer at Beta Clinic
    acme = OrganizationFactory(name="Acme Bank", slug="acme")
    beta = OrganizationFactory(name="Beta Clinic", slug="beta")
    ada = member(Role.ADMIN, acme, username="ada")
    MembershipFactory(user=ada, organization=beta, role=Role.CONSUMER)

    # when: she signs in
    sign_in(page, "ada")
    # then: the dashboard of her first organisation
    page.wait_for_selector("h1:has-text('Acme Bank')")
    assert "admin" in page.inner_text(".lead")

    # when: she switches to Beta Clinic
    page.select_option("#org-select", str(beta.pk))
    page.wait_for_selector("h1:has-text('Beta Clinic')")
    # then: the session acts in Beta, as a consumer, for the API too
    me = page.request.get("/api/v1/me").json()
    assert me["organization"] == "beta" and me["role"] == "consumer"
    assert page.locator("nav >> text=Members").count() == 0

    # when: she creates a token there
    page.click("nav >> text=API tokens")
    # (waits for the page: a click does not wait for the next page to load)
    expect(page.locator("#id_role option")).to_have_text(["consumer"], timeout=patience(15) * 1000)
    page.fill("#id_name", "claims service")
    page.click("[data-testid=token-form] button[type=submit]")
    secret = page.inner_text("#new-token-secret").strip()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "tokens.png"), full_page=True)
    # then: it works against the API, in Beta
    status, body = call_api(live_server.url, "/api/v1/me", secret)
    assert status == 200 and body["organization"] == "beta"

    # when: she revokes it (htmx swaps the rows in place after the confirm dialog)
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.locator("tr", has_text="claims service")
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector("tr:has-text('claims service') .badge.revoked")
    # then
    status, body = call_api(live_server.url, "/api/v1/me", secret)
    assert status == 401 and "revoked" in body["error"]["message"]
    assert ApiToken.objects.get(name="claims service").revoked_at is not None

    # and after reloading, the secret is nowhere on the page
    page.reload()
    assert secret not in page.content()


def test_wrong_password_shows_a_clear_message(page) -> None:
    member(Role.OWNER, username="bob")
    sign_in(page, "bob", "not-the-password")
    alert = page.inner_text("[role=alert]")
    assert "correct username and password" in alert
