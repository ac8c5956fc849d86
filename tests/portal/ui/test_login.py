"""Browser sign-in: sessions with CSRF, lock-out after repeated failures, all logged."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.log.models import LogEntry
from portal.accounts.roles import Role
from tests.portal.accounts.factories import PASSWORD, OrganizationFactory, member

pytestmark = pytest.mark.django_db


class LoginTests:
    def test_sign_in_lands_on_the_dashboard_and_is_logged(self) -> None:
        # given
        user = member(Role.OWNER, OrganizationFactory(name="Acme"))
        client = Client()
        # when
        response = client.post("/login/", {"username": user.username, "password": PASSWORD}, follow=True)
        # then
        assert response.status_code == 200
        assert b"Acme" in response.content
        assert LogEntry.objects.filter(action="user.logged_in", actor_id=str(user.pk)).exists()

    def test_the_sign_in_page_says_what_steward_is_and_has_an_icon(self) -> None:
        page = Client().get("/login/").content.decode()
        assert "Sign in to Steward" in page and "serves an organisation's machine-learning models" in page
        assert 'rel="icon"' in page and "favicon.svg" in page

    def test_login_form_requires_csrf(self) -> None:
        user = member(Role.OWNER)
        client = Client(enforce_csrf_checks=True)
        response = client.post("/login/", {"username": user.username, "password": PASSWORD})
        assert response.status_code == 403

    def test_failed_sign_in_is_logged_without_the_password(self) -> None:
        user = member(Role.OWNER)
        Client().post("/login/", {"username": user.username, "password": "wrong-password-1"})
        entry = LogEntry.objects.get(action="user.login_failed")
        assert entry.target_id == str(user.pk)
        assert "wrong-password-1" not in str(entry.payload)

    def test_repeated_failures_lock_the_account_out(self, settings) -> None:
        # given
        settings.LOGIN_MAX_FAILURES = 3
        user = member(Role.OWNER)
        client = Client()
        # when
        for _ in range(3):
            client.post("/login/", {"username": user.username, "password": "nope-nope-nope"})
        locked = client.post("/login/", {"username": user.username, "password": PASSWORD})
        # then: even the right password is refused while locked, and the lock-out is logged
        assert locked.status_code == 200
        assert b"Too many failed sign-ins" in locked.content
        assert "_auth_user_id" not in client.session
        assert LogEntry.objects.filter(action="user.locked_out").count() == 1

    def test_dashboard_needs_sign_in(self) -> None:
        response = Client().get("/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")

    def test_member_of_no_organisation_is_told_so(self) -> None:
        from tests.portal.accounts.factories import UserFactory

        client = Client()
        client.force_login(UserFactory())
        response = client.get("/")
        assert response.status_code == 403
        assert b"not a member of any organisation" in response.content


class OrganizationSwitchTests:
    def test_switch_to_own_organisation(self) -> None:
        first, second = OrganizationFactory(name="First"), OrganizationFactory(name="Second")
        user = member(Role.ADMIN, first)
        from tests.portal.accounts.factories import MembershipFactory

        MembershipFactory(user=user, organization=second, role=Role.CONSUMER)
        client = Client()
        client.force_login(user)
        response = client.post("/organization/switch/", {"organization": second.pk, "next": "/"}, follow=True)
        assert b"Now working in Second" in response.content
        assert client.get("/api/v1/me").json()["organization"] == second.slug

    def test_switch_to_foreign_organisation_is_refused(self) -> None:
        mine, foreign = OrganizationFactory(), OrganizationFactory()
        user = member(Role.ADMIN, mine)
        client = Client()
        client.force_login(user)
        response = client.post("/organization/switch/", {"organization": foreign.pk}, follow=True)
        assert b"not a member of that organisation" in response.content
        assert client.get("/api/v1/me").json()["organization"] == mine.slug


class TokenPageTests:
    def test_create_shows_secret_once_and_revoke(self) -> None:
        org = OrganizationFactory()
        user = member(Role.OWNER, org)
        client = Client()
        client.force_login(user)
        created = client.post("/tokens/", {"name": "svc", "role": "consumer", "expires_in_days": 30})
        assert created.status_code == 200
        secret = created.context["created"].secret
        assert secret.encode() in created.content
        assert secret.encode() not in client.get("/tokens/").content
        token = created.context["created"].token
        client.post(f"/tokens/{token.pk}/revoke/")
        token.refresh_from_db()
        assert token.status == "revoked"

    def test_role_above_own_is_not_offered_nor_accepted(self) -> None:
        org = OrganizationFactory()
        client = Client()
        client.force_login(member(Role.OWNER, org))
        page = client.get("/tokens/")
        assert b'value="admin"' not in page.content
        response = client.post("/tokens/", {"name": "x", "role": "admin", "expires_in_days": 30})
        assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("attempts", "threads"), [(13, 13), (31, 10)])
def test_concurrent_attempts_never_evaluate_more_passwords_than_the_limit(settings, attempts, threads) -> None:
    """Each attempt is counted before its password is checked: racing attempts cannot all pass the check."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    settings.LOGIN_MAX_FAILURES = 5
    user = member(Role.OWNER)
    start = threading.Barrier(threads)
    passwords = ["wrong-password-x"] * (attempts - 1) + [PASSWORD]

    def attempt(password: str) -> bool:
        try:
            client = Client()
            if threading.current_thread().name not in started:
                started.add(threading.current_thread().name)
                start.wait(timeout=120)
            client.post("/login/", {"username": user.username, "password": password})
            return "_auth_user_id" in client.session
        finally:
            connection.close()

    started: set[str] = set()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        signed_in = sum(pool.map(attempt, passwords))
    failures = list(LogEntry.objects.filter(action="user.login_failed", target_id=str(user.pk))
                    .values_list("index", flat=True))
    if signed_in:  # the right password was tested only while fewer than the limit had failed...
        success = LogEntry.objects.get(action="user.logged_in", actor_id=str(user.pk)).index
        assert sum(1 for index in failures if index < success) < settings.LOGIN_MAX_FAILURES
    # ... and a success starts the count afresh, as it should: never more than the limit on each side of it
    assert len(failures) <= settings.LOGIN_MAX_FAILURES * (signed_in + 1)
