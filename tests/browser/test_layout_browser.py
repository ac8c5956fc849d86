"""Layouts: the admin's top bar stays one line on a desktop; on a 390 px phone it is a menu and no page scrolls sideways."""

from __future__ import annotations

import pytest

from portal.accounts.roles import Role
from tests.browser.test_accounts_browser import sign_in
from tests.inference.factories import serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ["/", "/models/", "/models/credit/", "/models/credit/playground/", "/jobs/", "/tokens/", "/members/",
         "/audit/", "/usage/", "/audit/redaction/"]


@pytest.fixture
def admin(tmp_path):
    served = serve_model(OrganizationFactory(name="Acme Bank of Very Long Names"), name="credit",
                         task="tabular-classification", archive=tiny_tabular_archive(tmp_path / "m"))
    return member(Role.ADMIN, served.org, username="ada.lovelace.administrator")


def test_the_admins_top_bar_is_one_line_on_a_desktop(page, admin) -> None:
    sign_in(page, admin.username)
    page.wait_for_selector("header.topbar")
    links = page.locator("#main-nav a")
    tops = {round(links.nth(i).bounding_box()["y"]) for i in range(links.count())}
    assert links.count() >= 10 and len(tops) == 1, tops  # every link on one row
    assert not page.locator("[data-menu-button]").is_visible()


def test_on_a_phone_the_top_bar_is_a_menu_and_nothing_scrolls_sideways(page, admin) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, admin.username)
    button = page.wait_for_selector("[data-menu-button]")
    assert button.is_visible() and not page.locator("#main-nav").is_visible()
    button.click()
    assert page.locator("#main-nav").is_visible() and button.get_attribute("aria-expanded") == "true"
    for path in PAGES:
        page.goto(path)
        page.wait_for_load_state("load")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
    # a chart keeps its labels legible (11 px ticks drawn at 10 px or more) and scrolls inside its card
    page.goto("/usage/")
    label = page.locator("[data-testid=usage-daily] svg.chart text.tick").first
    assert float(page.evaluate("(e) => e.getBoundingClientRect().height", label.element_handle())) >= 10
