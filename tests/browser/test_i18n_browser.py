"""In real Chromium, in both languages: a browser that asks for Chinese gets the sign-in page and the
dashboard in Chinese; the switcher changes the language and the choice follows the user into another
browser."""

from __future__ import annotations

import re

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


# A Chinese sentence ends in Chinese punctuation: an English full stop or colon after a Chinese character
# is a sentence the page put together from parts (a translated piece, then "." outside it).
HALF_TRANSLATED_STOP = re.compile(r"[\u4e00-\u9fff][.:;](\s|$)")


def assert_chinese_punctuation(page) -> None:
    text = page.inner_text("main")
    found = HALF_TRANSLATED_STOP.search(text)
    assert found is None, text[max(0, found.start() - 60):found.end() + 20]


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
        assert_chinese_punctuation(page)
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


@pytest.mark.worker
def test_the_walk_in_chinese_playground_explanation_bias_report_and_export(browser, live_server, settings,
                                                                           celery_worker, tmp_path) -> None:
    """Sign-in, the playground, an explanation, a bias report and an export, in a browser that asks for
    Chinese; the export's PDF comes in Chinese too."""
    import io

    from pypdf import PdfReader

    from tests.audit.fairness.test_reports_api import evaluation_rows
    from tests.inference.factories import serve_model, tiny_tabular_archive

    settings.LANGUAGES = BOTH
    served = serve_model(OrganizationFactory(name="华夏银行"), name="credit", task="tabular-classification",
                         archive=tiny_tabular_archive(tmp_path / "v1"))
    data = tmp_path / "eval.csv"
    data.write_text("income,region,group,outcome\n" + "".join(
        f"{r['income']},{r['region']},{r['group']},{r['outcome']}\n" for r in evaluation_rows()))
    context, page = _context(browser, live_server, "zh-CN")
    try:
        sign_in(page, served.actors["owner"].user.username)
        page.wait_for_selector("h1:has-text('华夏银行')")
        # the playground and an explanation
        page.goto("/models/credit/playground/")
        assert page.inner_text("h1").startswith("试用：credit")
        page.fill("#f-income", "12")
        page.click("[data-testid=playground-form] button[type=submit]")
        page.wait_for_selector("[data-testid=prediction-label]")
        assert page.inner_text("#result h2") == "结果" and "回执：审计记录" in page.inner_text("#result")
        page.click("[data-testid=explain]")
        page.wait_for_selector("[data-testid=waterfall] svg.chart", timeout=patience(60) * 1000)
        assert page.inner_text("[data-testid=explanation] h2") == "是什么推动了这一决定"
        summary = page.inner_text("[data-testid=explanation-summary]")
        assert summary.startswith("模型的回答是") and "推向" in summary and "pushed towards" not in summary
        assert "计算方式" in page.inner_text("main") and "基准值 E[f(x)]" in page.inner_text("[data-testid=explanation-facts]")
        assert_chinese_punctuation(page)
        page.screenshot(path=str(SHOTS / "explanation-zh.png"), full_page=True)
        # a bias report
        page.goto("/models/credit/versions/1/bias/")
        assert page.inner_text("[data-testid=report-form] button[type=submit]") == "生成报告"
        page.set_input_files("#id_file", str(data))
        page.fill("#id_label_column", "outcome")
        page.fill("#id_sensitive_columns", "group")
        page.fill("#id_favourable_label", "grant")
        page.click("[data-testid=report-form] button[type=submit]")
        verdict = page.wait_for_selector("[data-testid=verdict]", timeout=patience(60) * 1000)
        assert verdict.inner_text().strip() == "不通过"
        axis = page.inner_text("[data-testid=axis]")
        assert "五分之四规则" in axis and "群体" in axis
        assert_chinese_punctuation(page)
        page.screenshot(path=str(SHOTS / "bias-report-zh.png"), full_page=True)
    finally:
        context.close()
    # an auditor's export, generated from the page: the page and the PDF in Chinese
    context, page = _context(browser, live_server, "zh-CN")
    try:
        sign_in(page, served.actors["auditor"].user.username)
        page.wait_for_selector("html[lang=zh-hans]")
        page.goto("/models/credit/versions/1/exports/")
        page.click("[data-testid=export-form] button[type=submit]")
        issues = page.wait_for_selector("[data-testid=issues]", timeout=patience(60) * 1000)
        assert issues.inner_text().startswith("未解决问题")
        assert "欧盟《人工智能法》附件 IV" in page.inner_text("[data-testid=mapping]")
        assert_chinese_punctuation(page)
        page.screenshot(path=str(SHOTS / "compliance-export-zh.png"), full_page=True)
        pdf = page.request.get(page.get_attribute("a:text-is('阅读 PDF')", "href"))
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body())).pages)
        assert "1. 摘要与未解决问题" in text and "9. 审计日志" in text and "华夏银行" in text
        stop = HALF_TRANSLATED_STOP.search(text)
        assert stop is None, text[max(0, stop.start() - 60):stop.end() + 20]
    finally:
        context.close()
