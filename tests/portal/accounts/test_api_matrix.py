"""Every accounts endpoint x every role x own/other organisation.

Rights: admin manages members; every member reads its organisation and manages its own tokens
(tokens cannot manage tokens); nobody sees another organisation's objects (404, never the object).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken, Membership
from portal.accounts.roles import Role
from tests.portal.accounts.factories import OrganizationFactory, UserFactory, member, token_for

ROLES = [r.value for r in Role]
ALL = dict.fromkeys(ROLES, 200)


@dataclass
class World:
    own_org: object
    other_org: object
    users: dict[str, object]
    own_member_id: int
    other_member_id: int
    other_token_id: int
    own_invitation_id: int
    other_invitation_id: int


@pytest.fixture
def world(db) -> World:
    own, other = OrganizationFactory(), OrganizationFactory()
    users = {role: member(role, own) for role in ROLES}
    stranger = member(Role.ADMIN, other)
    own_consumer = Membership.objects.get(user=users["consumer"], organization=own)
    return World(
        own_org=own,
        other_org=other,
        users=users,
        own_member_id=own_consumer.pk,
        other_member_id=Membership.objects.get(user=stranger).pk,
        other_token_id=token_for(stranger, other).token.pk,
        own_invitation_id=_invite(own, users["admin"], "someone").pk,
        other_invitation_id=_invite(other, stranger, users["consumer"].username).pk,
    )


def _invite(organization, admin, username: str):
    from datetime import timedelta

    from django.utils import timezone

    from portal.accounts.models import Invitation

    return Invitation.objects.create(organization=organization, username=username, role="consumer", invited_by=admin,
                                     expires_at=timezone.now() + timedelta(days=1))


def bearer(world: World, role: str) -> APIClient:
    client = APIClient()
    secret = token_for(world.users[role], world.own_org).secret
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session(world: World, role: str) -> APIClient:
    client = APIClient()
    client.force_login(world.users[role])
    return client


# (name, method, path, body, {role: status}) with the caller's token.
TOKEN_CASES = [
    ("me", "get", lambda w: "/api/v1/me", None, ALL),
    ("organizations", "get", lambda w: "/api/v1/organizations", None, ALL),
    ("members-list", "get", lambda w: "/api/v1/members", None,
     {**dict.fromkeys(ROLES, 403), "admin": 200}),
    ("members-add", "post", lambda w: "/api/v1/members", "add",
     {**dict.fromkeys(ROLES, 403), "admin": 202}),
    ("member-role-own-org", "patch", lambda w: f"/api/v1/members/{w.own_member_id}", {"role": "auditor"},
     {**dict.fromkeys(ROLES, 403), "admin": 200}),
    ("member-role-other-org", "patch", lambda w: f"/api/v1/members/{w.other_member_id}", {"role": "auditor"},
     {**dict.fromkeys(ROLES, 403), "admin": 404}),
    ("member-remove-other-org", "delete", lambda w: f"/api/v1/members/{w.other_member_id}", None,
     {**dict.fromkeys(ROLES, 403), "admin": 404}),
    ("tokens-list", "get", lambda w: "/api/v1/tokens", None, ALL),
    ("tokens-create-with-token", "post", lambda w: "/api/v1/tokens", {"name": "x"},
     dict.fromkeys(ROLES, 403)),
    ("token-revoke-other-org", "delete", lambda w: f"/api/v1/tokens/{w.other_token_id}", None,
     dict.fromkeys(ROLES, 404)),
    ("invitations-sent", "get", lambda w: "/api/v1/members/invitations", None,
     {**dict.fromkeys(ROLES, 403), "admin": 200}),
    ("invitation-revoke", "post", lambda w: f"/api/v1/members/invitations/{w.own_invitation_id}/revoke", None,
     {**dict.fromkeys(ROLES, 403), "admin": 200}),
    ("invitation-revoke-other-org", "post",
     lambda w: f"/api/v1/members/invitations/{w.other_invitation_id}/revoke", None,
     {**dict.fromkeys(ROLES, 403), "admin": 404}),
    ("invitations-mine", "get", lambda w: "/api/v1/invitations", None, ALL),
    # addressed to the consumer by another organisation: only the consumer may answer it
    ("invitation-answer", "post", lambda w: f"/api/v1/invitations/{w.other_invitation_id}/decline", None,
     {**dict.fromkeys(ROLES, 404), "consumer": 200}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "path", "body", "expected"), TOKEN_CASES,
                         ids=[c[0] for c in TOKEN_CASES])
def test_token_rights(world, role, name, method, path, body, expected) -> None:
    # given
    client = bearer(world, role)
    if body == "add":
        body = {"username": UserFactory().username, "role": "consumer"}
    # when
    response = getattr(client, method)(path(world), body, format="json")
    # then
    assert response.status_code == expected[role], response.content
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}
    if name in ("member-role-other-org", "member-remove-other-org"):
        assert Membership.objects.get(pk=world.other_member_id).role == "admin"


@pytest.mark.parametrize("role", ROLES)
def test_session_member_creates_token_of_own_role(world, role) -> None:
    # when
    response = session(world, role).post("/api/v1/tokens", {"name": "mine", "role": role}, format="json")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["token"].startswith("stw_")


@pytest.mark.parametrize("role", ROLES)
def test_session_member_cannot_create_token_above_role(world, role) -> None:
    # given: roles whose rights are not within the caller's
    from portal.accounts.roles import role_within

    higher = [r for r in ROLES if not role_within(r, role)]
    client = session(world, role)
    for requested in higher:
        # when
        response = client.post("/api/v1/tokens", {"name": "up", "role": requested}, format="json")
        # then
        assert response.status_code == 403, (role, requested)
        assert response.json()["error"]["code"] == "role_too_high"
    assert not ApiToken.objects.filter(name="up").exists()


@pytest.mark.parametrize("role", ROLES)
def test_session_member_revokes_own_token_not_another_tenants(world, role) -> None:
    # given
    client = session(world, role)
    own = token_for(world.users[role], world.own_org).token
    # when
    ok = client.delete(f"/api/v1/tokens/{own.pk}")
    other = client.delete(f"/api/v1/tokens/{world.other_token_id}")
    # then
    assert ok.status_code == 200 and ok.json()["status"] == "revoked"
    assert other.status_code == 404
    assert ApiToken.objects.get(pk=world.other_token_id).revoked_at is None


def test_member_of_other_org_is_never_listed(world) -> None:
    # when
    tokens = session(world, "admin").get("/api/v1/tokens").json()
    members = session(world, "admin").get("/api/v1/members").json()
    # then
    assert world.other_token_id not in {t["id"] for t in tokens}
    assert world.other_member_id not in {m["id"] for m in members}


def test_anonymous_gets_401_everywhere(db) -> None:
    client = APIClient()
    for path in ["/api/v1/me", "/api/v1/organizations", "/api/v1/members", "/api/v1/tokens"]:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"


def test_an_admin_removes_a_member_whose_tokens_go_with_it_but_never_the_last_admin(world) -> None:
    from audit.log.models import LogEntry

    admin = session(world, "admin")
    consumer_token = token_for(world.users["consumer"], world.own_org)
    still = APIClient()
    still.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token.secret}")
    assert still.get("/api/v1/me").status_code == 200
    # the consumer's own token cannot remove anyone
    assert still.delete(f"/api/v1/members/{world.own_member_id}").status_code == 403
    # when
    assert admin.delete(f"/api/v1/members/{world.own_member_id}").status_code == 204
    # then: gone, the token with it, the removal in the log
    assert not Membership.objects.filter(pk=world.own_member_id).exists()
    assert still.get("/api/v1/me").status_code == 401
    assert ApiToken.objects.get(pk=consumer_token.token.pk).revoked_at is not None
    entry = LogEntry.objects.get(action="membership.removed", target_id=str(world.users["consumer"].pk))
    assert entry.payload["username"] == world.users["consumer"].username and entry.payload["tokens_revoked"] >= 1
    assert admin.delete(f"/api/v1/members/{world.own_member_id}").status_code == 404
    # the last admin stays
    own_admin = Membership.objects.get(user=world.users["admin"], organization=world.own_org)
    refused = admin.delete(f"/api/v1/members/{own_admin.pk}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "last_admin"
    assert Membership.objects.filter(pk=own_admin.pk).exists()


def test_the_members_page_removes_a_member(world) -> None:
    from django.test import Client

    page = Client()
    page.force_login(world.users["admin"])
    shown = page.get("/members/").content.decode()
    assert f'name="remove" value="{world.own_member_id}"' in shown
    removed = page.post("/members/", {"remove": world.own_member_id}, follow=True).content.decode()
    assert "is no longer a member" in removed
    assert not Membership.objects.filter(pk=world.own_member_id).exists()
