from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from portal.accounts.roles import Role
from tests.portal.accounts.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


class CreateTokenCommandTests:
    def test_prints_a_working_token(self) -> None:
        org = OrganizationFactory(slug="acme")
        user = member(Role.OWNER, org, username="olivia")
        out = StringIO()
        call_command("create_token", "--user", "olivia", "--org", "acme", "--role", "consumer", stdout=out)
        secret = out.getvalue().strip()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        body = client.get("/api/v1/me").json()
        assert body["username"] == user.username and body["role"] == "consumer"

    def test_refuses_a_role_above_the_membership(self) -> None:
        org = OrganizationFactory(slug="acme")
        member(Role.CONSUMER, org, username="carl")
        with pytest.raises(CommandError, match="cannot hold a admin token"):
            call_command("create_token", "--user", "carl", "--org", "acme", "--role", "admin")

    def test_unknown_organisation(self) -> None:
        member(Role.CONSUMER, username="dora")
        with pytest.raises(CommandError, match="no organisation"):
            call_command("create_token", "--user", "dora", "--org", "nope")
