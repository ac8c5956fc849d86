"""In real Chromium: an input in a language the model card does not list is answered with a notice, in
the classifier's playground and in the chat playground, and counted on the model's page."""

from __future__ import annotations

import pytest

from inference.models import ModelVersion
from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.factories import CARD, serve_model
from tests.portal.accounts.factories import OrganizationFactory
from tests.waits import patience

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_playground_says_when_an_input_is_not_in_the_models_language(page, celery_worker,
                                                                         sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(name="Daily News"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes, card={**CARD, "languages": "en"})
    sign_in(page, served.actors["owner"].user.username)
    page.goto("/models/sentiment/playground/")
    page.fill("#text", "a dull and boring film that I would never watch again")
    page.click("[data-testid=playground-form] button[type=submit]")
    page.wait_for_selector("[data-testid=prediction-label]")
    assert page.locator("[data-testid=language-notice]").count() == 0
    page.fill("#text", "这部电影非常无聊，我看了一半就走了。")
    page.click("[data-testid=playground-form] button[type=submit]")
    notice = page.wait_for_selector("[data-testid=language-notice]")
    assert "trained on English; this input looks like Chinese" in notice.inner_text()
    assert page.locator("[data-testid=prediction-label]").count() == 1  # answered all the same
    page.screenshot(path=str(SHOTS / "language-notice.png"), full_page=True)
    page.goto("/models/sentiment/")
    counted = page.inner_text("[data-testid=language-mismatches]")
    assert "1 request looked like a language the card does not list" in counted and "Chinese (1)" in counted


def test_the_chat_playground_says_so_beside_the_answer(page, assistant) -> None:
    ModelVersion.objects.filter(pk=assistant.version.pk).update(card={**assistant.version.card, "languages": "en"})
    sign_in(page, assistant.actors["consumer"].user.username)
    page.goto("/models/assistant/playground/")
    page.fill("#message", "请用一句话介绍一下北京这座城市的历史。")
    page.fill("#max_tokens", "4")
    page.click("[data-testid=chat-form] >> text=Send")
    page.wait_for_selector("[data-testid=chat-receipt]", timeout=patience(300) * 1000)
    notice = page.wait_for_selector("[data-testid=language-notice]")
    assert "trained on English; this input looks like Chinese" in notice.inner_text()
