"""In real Chromium: an admin sets the organisation's guardrail policy on its page, a consumer's chat
answer is stopped by it, and the completion's page shows each decision."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from audit.log.models import LogEntry
from inference.models import Completion, GuardrailPolicy
from tests.browser.test_accounts_browser import SHOTS, sign_in
from tests.inference.factories import serve_model
from tests.waits import patience

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_an_admin_sets_the_policy_and_the_completion_page_shows_its_decisions(
        page, assistant, moderation_bytes) -> None:
    serve_model(assistant.org, name="moderation", task="text-classification", archive=moderation_bytes)
    sign_in(page, assistant.actors["admin"].user.username)
    page.goto("/guardrails/")
    expect(page.get_by_test_id("policy-in-force")).to_contain_text("no policy")
    page.check("input[name=mask_pii]")
    page.select_option("#output_action", "flag")
    page.fill("#blocked_patterns", "(a)\\1")  # RE2 cannot bound a backreference: refused, naming it
    page.click("text=Save the policy")
    expect(page.get_by_test_id("policy-error")).to_contain_text("linear time")
    assert not GuardrailPolicy.objects.exists()
    page.fill("#blocked_patterns", "(?i)ocean")
    page.click("text=Save the policy")
    expect(page.get_by_test_id("policy-in-force")).to_contain_text("revision 1")
    policy = GuardrailPolicy.objects.get()
    assert policy.mask_pii and policy.output_action == "flag" and policy.blocked_patterns == ["(?i)ocean"]
    assert LogEntry.objects.filter(action="guardrail.policy_set").count() == 1
    page.screenshot(path=str(SHOTS / "guardrails.png"), full_page=True)

    # a consumer's answer is stopped where it would speak of the ocean
    page.context.clear_cookies()
    consumer = page
    sign_in(consumer, assistant.actors["consumer"].user.username)
    consumer.goto("/models/assistant/playground/")
    consumer.fill("#message", "My e-mail is jane@example.com. Write three short sentences about the sea.")
    consumer.fill("#max_tokens", "80")
    consumer.fill("#temperature", "0")
    consumer.click("[data-testid=chat-form] >> text=Send")
    consumer.wait_for_selector("[data-testid=chat-receipt]", timeout=patience(300) * 1000)
    stored = Completion.objects.get()
    assert "ocean" not in consumer.inner_text("[data-role=assistant] p").lower()
    if stored.guard_outcome == "filtered":
        expect(consumer.get_by_test_id("chat-guard")).to_contain_text("content_filter")
    consumer.click(f"text=completion #{stored.pk}")
    decisions = consumer.get_by_test_id("guard-decision")
    expect(decisions.first).to_be_visible()
    table = consumer.inner_text("[data-testid=completion-guard]")
    assert "masked [EMAIL] x1" in table and "revision 1" in table
    assert "jane@example.com" not in consumer.content()
    consumer.screenshot(path=str(SHOTS / "completion-guard.png"), full_page=True)
