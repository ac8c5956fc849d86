"""Membership by invitation: another organisation's admin learns nothing of a user, and nobody joins
an organisation without accepting."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from portal.accounts.models import Invitation, Membership
from portal.accounts.roles import Role
from tests.portal.accounts.factories import OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def session(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def test_an_invited_user_joins_only_by_accepting_and_outsiders_learn_nothing() -> None:
    bank, insurer = OrganizationFactory(name="Bank"), OrganizationFactory(name="Insurer")
    admin = member(Role.ADMIN, bank)
    theirs = member(Role.CONSUMER, insurer)  # a user of another organisation
    nobody = "no-such-user-anywhere"

    answers = [session(admin).post("/api/v1/members", {"username": name, "role": "reviewer"}, format="json")
               for name in (theirs.username, nobody)]
    assert [a.status_code for a in answers] == [202, 202]
    shape = [{k for k in a.json() if k not in ("id", "username", "created_at", "expires_at")} for a in answers]
    assert shape[0] == shape[1] and answers[0].json()["status"] == answers[1].json()["status"] == "pending"
    assert not Membership.objects.filter(user=theirs, organization=bank).exists()

    # the invitee sees it, without needing a token of the inviting organisation
    mine = session(theirs).get("/api/v1/invitations").json()
    assert [i["organization"] for i in mine] == [bank.slug]
    # someone else cannot answer it, and learns nothing of it
    other = member(Role.ADMIN, insurer)
    assert session(other).post(f"/api/v1/invitations/{mine[0]['id']}/accept").status_code == 404
    accepted = session(theirs).post(f"/api/v1/invitations/{mine[0]['id']}/accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert Membership.objects.get(user=theirs, organization=bank).role == "reviewer"
    assert session(theirs).post(f"/api/v1/invitations/{mine[0]['id']}/accept").status_code == 404  # once
    actions = set(LogEntry.objects.filter(organization_id=bank.pk).values_list("action", flat=True))
    assert {"invitation.created", "invitation.accepted", "membership.created"} <= actions


def test_a_user_of_no_organisation_accepts_in_the_browser_and_an_admin_revokes() -> None:
    bank = OrganizationFactory(name="Bank")
    admin, newcomer = member(Role.ADMIN, bank), UserFactory()
    browser = Client()
    browser.force_login(admin)
    browser.post("/members/", {"invite": "1", "username": newcomer.username, "role": "auditor"})
    browser.post("/members/", {"invite": "1", "username": "someone-else", "role": "consumer"})
    pending = Invitation.objects.get(username="someone-else")
    page = browser.get("/members/").content.decode()
    assert "someone-else as consumer" in page
    browser.post("/members/", {"revoke": str(pending.pk)})
    assert Invitation.objects.get(pk=pending.pk).status == "revoked"

    visitor = Client()
    visitor.force_login(newcomer)
    landing = visitor.get("/")
    assert landing.status_code == 403 and "Bank" in landing.content.decode() and "Accept" in landing.content.decode()
    invitation = Invitation.objects.get(username=newcomer.username)
    joined = visitor.post(f"/invitations/{invitation.pk}/answer/", {"answer": "accept"}, follow=True)
    assert joined.status_code == 200 and "You joined Bank as auditor" in joined.content.decode()
    assert Membership.objects.get(user=newcomer, organization=bank).role == "auditor"
