"""In real Chromium, in both languages: a browser that asks for Chinese gets the sign-in page and the
dashboard in Chinese; the switcher changes the language and the choice follows the user into another
browser."""

from __future__ import annotations

import pytest

from portal.accounts.models import User
from portal.accounts.roles import Role
from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.portal.accounts.factories import OrganizationFactory, member
from tests.waits import patience

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BOTH = [("en-gb", "English"), ("zh-hans", "简体中文")]


def _context(browser, live_server, locale: str):
    context = browser.new_context(base_url=live_server.url, locale=locale, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(patience(15) * 1000)
    return context, page


def test_a_chinese_browser_signs_in_in_chinese_and_switches_to_english(browser, live_server, settings) -> None:
    settings.LANGUAGES = BOTH
    member(Role.OWNER, OrganizationFactory(name="华夏保险"), username="li")
    context, page = _context(browser, live_server, "zh-CN")
    try:
        page.goto("/login/")
        assert page.inner_text("h1") == "登录 Steward"
        assert page.get_attribute("html", "lang") == "zh-hans"
        assert page.inner_text("label[for=id_username]") == "用户名"
        sign_in(page, "li")
        page.wait_for_selector("h1:has-text('华夏保险')")
        assert "您在此的角色是" in page.inner_text(".lead")
        assert page.inner_text("nav a[href='/']") == "概览"
        assert page.locator("nav >> text=API 令牌").count() == 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard-zh.png"), full_page=True)

        page.select_option("#language-select", "en-gb")  # the switcher sends its form on change
        page.wait_for_selector("html[lang=en-gb]")
        assert "You are" in page.inner_text(".lead") and page.inner_text("nav a[href='/']") == "Dashboard"
        assert User.objects.get(username="li").language == "en-gb"
    finally:
        context.close()


def test_the_choice_follows_the_user_into_another_browser(browser, live_server, settings) -> None:
    settings.LANGUAGES = BOTH
    member(Role.AUDITOR, OrganizationFactory(name="Acme Bank"), username="ada")
    first, page = _context(browser, live_server, "en-GB")
    try:
        sign_in(page, "ada")
        page.wait_for_selector("h1:has-text('Acme Bank')")
        assert page.locator("#language-select option:checked").inner_text() == "English"
        page.select_option("#language-select", "zh-hans")
        page.wait_for_selector("html[lang=zh-hans]")
        assert page.locator("nav >> text=审计日志").count() == 1
    finally:
        first.close()
    second, page = _context(browser, live_server, "en-GB")  # another browser, which asks for English
    try:
        page.goto("/login/")
        assert page.inner_text("h1") == "Sign in to Steward"  # nobody is known yet: the browser's language
        sign_in(page, "ada")
        page.wait_for_selector("html[lang=zh-hans]")
        assert page.locator("[data-testid=your-audit] h2").inner_text() == "审计"
        assert page.locator("#language-select option:checked").inner_text() == "简体中文"
    finally:
        second.close()
