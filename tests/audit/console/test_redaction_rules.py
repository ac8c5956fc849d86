"""An organisation's redaction rules, managed in the API and in a page: listed, tried, added, removed, audited."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.log.models import LogEntry, RedactionRule
from portal.accounts.roles import Role
from tests.portal.accounts.factories import OrganizationFactory, member, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_and_org():
    org = OrganizationFactory()
    return member(Role.ADMIN, org), org


def api(user, org) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, org).secret}")
    return client


def test_a_rule_is_tried_added_applied_and_removed_through_the_api(admin_and_org) -> None:
    admin, org = admin_and_org
    client = api(admin, org)
    sample = "Patient MRN-123456 wrote from ann@example.org"
    # tried before it exists: nothing stored, the built-in redaction and the candidate applied
    tried = client.post("/api/v1/audit/redaction-preview", {"text": sample, "label": "MRN", "pattern": r"MRN-\d{6}"},
                        format="json")
    assert tried.status_code == 200, tried.content
    assert tried.json()["redacted"] == "Patient [MRN] wrote from [EMAIL]"
    assert not RedactionRule.objects.exists()
    assert not LogEntry.objects.filter(payload__icontains="MRN-123456").exists()
    refused = client.post("/api/v1/audit/redaction-preview", {"text": sample, "pattern": ".*"}, format="json")
    assert refused.status_code == 400 and "empty" in refused.json()["error"]["message"]
    # added, then applied to what is logged afterwards
    created = client.post("/api/v1/audit/redaction-rules", {"label": "MRN", "pattern": r"MRN-\d{6}"}, format="json")
    assert created.status_code == 201
    rule = created.json()["id"]
    assert client.post("/api/v1/audit/redaction-preview", {"text": sample}, format="json").json()["redacted"] == \
        "Patient [MRN] wrote from [EMAIL]"
    # removed: audited, and later entries are no longer redacted by it
    assert client.delete(f"/api/v1/audit/redaction-rules/{rule}").status_code == 204
    entry = LogEntry.objects.get(action="redaction_rule.deleted", target_id=str(rule))
    assert entry.payload == {"label": "MRN", "pattern": r"MRN-\d{6}"}
    assert client.post("/api/v1/audit/redaction-preview", {"text": sample}, format="json").json()["redacted"] == \
        "Patient MRN-123456 wrote from [EMAIL]"
    assert client.delete(f"/api/v1/audit/redaction-rules/{rule}").status_code == 404


def test_only_the_organisations_admins_see_or_change_its_rules(admin_and_org) -> None:
    admin, org = admin_and_org
    rule = api(admin, org).post("/api/v1/audit/redaction-rules", {"label": "CASE", "pattern": r"CASE-\d+"},
                                format="json").json()["id"]
    owner = member(Role.OWNER, org)
    assert api(owner, org).delete(f"/api/v1/audit/redaction-rules/{rule}").status_code == 403
    assert api(owner, org).post("/api/v1/audit/redaction-preview", {"text": "x"}, format="json").status_code == 403
    other = OrganizationFactory()
    stranger = api(member(Role.ADMIN, other), other)
    assert stranger.delete(f"/api/v1/audit/redaction-rules/{rule}").status_code == 404
    assert stranger.post("/api/v1/audit/redaction-preview", {"text": "CASE-1"}, format="json").json()["redacted"] == \
        "CASE-1"  # another organisation's rules never apply
    assert RedactionRule.objects.filter(pk=rule).exists()


def test_the_page_lists_tries_adds_and_removes_rules(admin_and_org) -> None:
    admin, org = admin_and_org
    page = Client()
    page.force_login(admin)
    assert "None yet" in page.get("/audit/redaction/").content.decode()
    tried = page.post("/audit/redaction/", {"action": "try", "sample": "case CASE-42 by bob@example.org",
                                            "label": "CASE", "pattern": r"CASE-\d+"}).content.decode()
    assert "case [CASE] by [EMAIL]" in tried and not RedactionRule.objects.exists()
    bad = page.post("/audit/redaction/", {"action": "add", "label": "case", "pattern": r"CASE-\d+"})
    assert bad.status_code == 400 and "capital letters" in bad.content.decode()
    added = page.post("/audit/redaction/", {"action": "add", "label": "CASE", "pattern": r"CASE-\d+"}, follow=True)
    assert "Redaction rule CASE added" in added.content.decode() and "[CASE]" in added.content.decode()
    rule = RedactionRule.objects.get(organization_id=org.pk)
    assert LogEntry.objects.filter(action="redaction_rule.created", target_id=str(rule.pk)).exists()
    removed = page.post("/audit/redaction/", {"action": "delete", "rule": rule.pk}, follow=True)
    assert "removed" in removed.content.decode() and not RedactionRule.objects.exists()
    # the members page leads there; an owner may not enter
    assert 'data-testid="redaction-link"' in page.get("/members/").content.decode()
    owner = Client()
    owner.force_login(member(Role.OWNER, org))
    assert owner.get("/audit/redaction/").status_code == 403
