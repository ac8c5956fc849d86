"""Bearer tokens: stored hashed, shown once, expiry, revocation, rate limits, bad input."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from portal.accounts.models import ApiToken, Membership
from portal.accounts.roles import Role
from tests.portal.accounts.factories import OrganizationFactory, member, token_for

pytestmark = pytest.mark.django_db


def client_with(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


class TokenStorageTests:
    def test_only_a_hash_is_stored_and_the_secret_is_shown_once(self) -> None:
        # given
        org = OrganizationFactory()
        user = member(Role.OWNER, org)
        session = APIClient()
        session.force_login(user)
        # when
        created = session.post("/api/v1/tokens", {"name": "ci", "role": "consumer"}, format="json").json()
        listed = session.get("/api/v1/tokens").json()
        # then
        token = ApiToken.objects.get(pk=created["id"])
        assert token.key_hash == hashlib.sha256(created["token"].encode()).hexdigest()
        assert created["token"] not in str(ApiToken.objects.filter(pk=token.pk).values().first())
        assert all("token" not in row for row in listed)
        assert created["token"].startswith(token.prefix)

    def test_creation_and_revocation_are_audited(self) -> None:
        # given
        org = OrganizationFactory()
        user = member(Role.ADMIN, org)
        session = APIClient()
        session.force_login(user)
        # when
        created = session.post("/api/v1/tokens", {"name": "audited"}, format="json").json()
        session.delete(f"/api/v1/tokens/{created['id']}")
        session.delete(f"/api/v1/tokens/{created['id']}")  # twice: one event
        # then
        actions = list(
            LogEntry.objects.filter(target_type="accounts.ApiToken", target_id=str(created["id"]))
            .values_list("action", flat=True)
        )
        assert actions == ["token.created", "token.revoked"]
        assert created["token"] not in str(list(LogEntry.objects.values("payload")))


class TokenAuthenticationTests:
    def test_valid_token_authenticates_in_its_organisation(self) -> None:
        org = OrganizationFactory()
        new = token_for(member(Role.CONSUMER, org), org)
        body = client_with(new.secret).get("/api/v1/me").json()
        assert body["organization"] == org.slug and body["via_token"] is True
        new.token.refresh_from_db()
        assert new.token.last_used_at is not None

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda t: setattr(t, "revoked_at", timezone.now()), "revoked"),
            (lambda t: setattr(t, "expires_at", timezone.now() - timedelta(seconds=1)), "expired"),
        ],
    )
    def test_revoked_or_expired_token_gets_401(self, mutate, message) -> None:
        org = OrganizationFactory()
        new = token_for(member(Role.CONSUMER, org), org)
        mutate(new.token)
        new.token.save()
        response = client_with(new.secret).get("/api/v1/me")
        assert response.status_code == 401
        assert message in response.json()["error"]["message"]

    @pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer stw_not-a-token"])
    def test_malformed_or_unknown_token_gets_401(self, header) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get("/api/v1/me")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"

    def test_member_removed_from_organisation_loses_token(self) -> None:
        org = OrganizationFactory()
        user = member(Role.CONSUMER, org)
        new = token_for(user, org)
        user.memberships.all().delete()
        assert client_with(new.secret).get("/api/v1/me").status_code == 401

    def test_demoted_member_token_loses_rights_beyond_new_role(self) -> None:
        # given: an admin token, then the admin is demoted to consumer
        org = OrganizationFactory()
        user = member(Role.ADMIN, org)
        member(Role.ADMIN, org)  # another admin remains
        new = token_for(user, org, Role.ADMIN)
        user.memberships.update(role=Role.CONSUMER)
        # when
        response = client_with(new.secret).get("/api/v1/members")
        # then
        assert response.status_code == 403


    def test_the_lookup_reads_what_the_orm_reads_in_one_query(self, django_assert_num_queries) -> None:
        """token_find_by_key's prebuilt SQL against the ORM's select_related and Subquery, in every state."""
        from django.db.models import OuterRef, Subquery

        from portal.accounts.services import token_find_by_key

        org, other = OrganizationFactory(), OrganizationFactory()
        active = token_for(member(Role.OWNER, org), org, Role.CONSUMER, rate_per_minute=7)
        revoked = token_for(member(Role.CONSUMER, other), other)
        ApiToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now(), last_used_at=timezone.now())
        gone = token_for(member(Role.REVIEWER, org, is_active=False), org)
        gone.token.user.memberships.all().delete()
        role = Membership.objects.filter(user=OuterRef("user"), organization=OuterRef("organization")).values("role")[:1]
        for new in (active, revoked, gone):
            with django_assert_num_queries(1):
                found = token_find_by_key(key=new.secret)
            assert found is not None
            reference = (ApiToken.objects.select_related("user", "organization").annotate(member_role=Subquery(role))
                         .get(pk=new.token.pk))
            for mine, theirs in ((found, reference), (found.user, reference.user),
                                 (found.organization, reference.organization)):
                fields = type(mine)._meta.concrete_fields
                assert [f.value_from_object(mine) for f in fields] == [f.value_from_object(theirs) for f in fields]
                assert mine._state.adding is False and mine._state.db == "default"
            assert found.member_role == reference.member_role  # type: ignore[attr-defined]
        assert [active.token.user.memberships.get().role, None] == [
            token_find_by_key(key=active.secret).member_role, token_find_by_key(key=gone.secret).member_role]  # type: ignore[union-attr]
        assert token_find_by_key(key="stw_unknown") is None


class RateLimitTests:
    def test_token_over_its_rate_gets_429_with_retry_after(self) -> None:
        # given
        org = OrganizationFactory()
        new = token_for(member(Role.CONSUMER, org), org, rate_per_minute=3)
        client = client_with(new.secret)
        # when
        statuses = [client.get("/api/v1/me").status_code for _ in range(4)]
        # then
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/api/v1/me")
        assert 0 < int(limited["Retry-After"]) <= 60
        assert limited.json()["error"]["code"] == "rate_limited"

    def test_rates_are_per_token(self) -> None:
        org = OrganizationFactory()
        user = member(Role.CONSUMER, org)
        first = client_with(token_for(user, org, rate_per_minute=1).secret)
        second = client_with(token_for(user, org, rate_per_minute=1).secret)
        assert first.get("/api/v1/me").status_code == 200
        assert first.get("/api/v1/me").status_code == 429
        assert second.get("/api/v1/me").status_code == 200


    def test_concurrent_requests_never_pass_more_than_the_rate(self) -> None:
        """On Redis the check and the count are one atomic step: 8 threads (each its own connection,
        as separate processes would be) making 40 attempts at a rate of 10 get exactly 10 through."""
        import threading
        from types import SimpleNamespace

        from django.core.cache import caches

        from portal.accounts.throttling import TokenRateThrottle
        from portal.platform.cache import SharedClientRedisCache

        if not isinstance(caches["default"], SharedClientRedisCache):
            pytest.skip("the embedded default's file cache uses DRF's throttle")
        org = OrganizationFactory()
        new = token_for(member(Role.CONSUMER, org), org, rate_per_minute=10)
        request = SimpleNamespace(auth=new.token, user=new.token.user)
        allowed: list[bool] = []
        waits: list[float] = []
        errors: list[str] = []

        def attempt() -> None:
            try:
                for _ in range(5):
                    throttle = TokenRateThrottle()
                    ok = throttle.allow_request(request, None)  # type: ignore[arg-type]
                    allowed.append(ok)
                    if not ok:
                        waits.append(throttle.wait())
            except Exception as exc:  # reported below, not lost with the thread
                errors.append(repr(exc))

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(allowed) == 40 and allowed.count(True) == 10, (errors, allowed)
        assert all(0 < w <= 60 for w in waits) and min(waits) > 55, waits  # the oldest of the 10 leaves in ~a minute


class BadInputTests:
    @pytest.fixture
    def session(self) -> APIClient:
        org = OrganizationFactory()
        client = APIClient()
        client.force_login(member(Role.ADMIN, org))
        return client

    def test_malformed_json_gets_400(self, session) -> None:
        response = session.post("/api/v1/tokens", '{"name": ', content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "malformed_request"

    def test_wrong_types_get_400_naming_the_field(self, session) -> None:
        response = session.post("/api/v1/tokens", {"name": "x", "expires_in_days": "soon"}, format="json")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid" and "expires_in_days" in error["details"]
        assert "expires_in_days" in error["message"]

    def test_unknown_fields_get_400(self, session) -> None:
        response = session.post("/api/v1/tokens", {"name": "x", "scope": "all"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["details"] == {"scope": ["Unknown field."]}

    def test_expiry_out_of_range_gets_400(self, session) -> None:
        response = session.post("/api/v1/tokens", {"name": "x", "expires_in_days": 10_000}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_expiry"

    def test_oversized_body_gets_413_and_changes_nothing(self, session, settings) -> None:
        settings.API_MAX_JSON_BYTES = 2048
        response = session.post("/api/v1/tokens", {"name": "x" * 5000}, format="json")
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert not ApiToken.objects.exists()

    def test_unknown_role_gets_400(self, session) -> None:
        response = session.post("/api/v1/members", {"username": "nobody", "role": "god"}, format="json")
        assert response.status_code == 400

    def test_an_unknown_user_is_invited_as_anyone_else_is(self, session) -> None:
        """No existence oracle: the answer does not depend on whether the user exists."""
        from tests.portal.accounts.factories import UserFactory

        stranger = UserFactory()
        unknown = session.post("/api/v1/members", {"username": "nobody", "role": "consumer"}, format="json")
        known = session.post("/api/v1/members", {"username": stranger.username, "role": "consumer"}, format="json")
        assert unknown.status_code == known.status_code == 202
        assert set(unknown.json()) == set(known.json()) and unknown.json()["status"] == known.json()["status"]
        assert not Membership.objects.filter(user=stranger).exists()  # nobody joins without accepting

    def test_session_api_calls_need_csrf(self) -> None:
        org = OrganizationFactory()
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(member(Role.ADMIN, org))
        response = client.post("/api/v1/tokens", {"name": "x"}, format="json")
        assert response.status_code == 403
        assert "CSRF" in response.json()["error"]["message"]


class LastAdminTests:
    def test_the_last_admin_cannot_be_demoted(self) -> None:
        org = OrganizationFactory()
        admin = member(Role.ADMIN, org)
        client = APIClient()
        client.force_login(admin)
        membership = admin.memberships.get()
        response = client.patch(f"/api/v1/members/{membership.pk}", {"role": "owner"}, format="json")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "last_admin"
        membership.refresh_from_db()
        assert membership.role == "admin"

    def test_role_change_is_audited(self) -> None:
        org = OrganizationFactory()
        admin = member(Role.ADMIN, org)
        other = member(Role.CONSUMER, org)
        client = APIClient()
        client.force_login(admin)
        client.patch(f"/api/v1/members/{other.memberships.get().pk}", {"role": "owner"}, format="json")
        entry = LogEntry.objects.get(action="membership.role_changed")
        assert entry.payload == {"username": other.username, "from": "consumer", "to": "owner"}
        assert entry.organization_id == org.pk and entry.actor_label == admin.username


class TokenPolicyTests:
    """A member cannot mint a token that outlives or outpaces what the organisation allows."""

    @pytest.mark.parametrize("role", ["consumer", "admin"])
    def test_no_token_that_never_expires_or_outpaces_the_limits(self, role, settings) -> None:
        from rest_framework.test import APIClient

        from portal.accounts.models import ApiToken

        org = OrganizationFactory(token_max_days=30, token_max_rate_per_minute=120)
        api = APIClient()
        api.force_login(member(role, org))
        for body, code in [({"expires_in_days": None}, "invalid"), ({"expires_in_days": 31}, "invalid_expiry"),
                           ({"expires_in_days": 30, "rate_per_minute": 100_000}, "rate_too_high"),
                           ({"expires_in_days": 30, "rate_per_minute": 121}, "rate_too_high")]:
            response = api.post("/api/v1/tokens", {"name": "x", "role": "consumer", **body}, format="json")
            assert response.status_code == 400, (body, response.content)
            assert response.json()["error"]["code"] == code, response.content
        assert not ApiToken.objects.filter(organization=org).exists()
        made = api.post("/api/v1/tokens", {"name": "x", "role": "consumer", "expires_in_days": 30,
                                           "rate_per_minute": 120}, format="json")
        assert made.status_code == 201 and made.json()["rate_per_minute"] == 120
        settings.API_TOKEN_MAX_DAYS = 10  # the operator's ceiling bounds every organisation's own
        assert api.post("/api/v1/tokens", {"name": "y", "role": "consumer", "expires_in_days": 30},
                        format="json").json()["error"]["code"] == "invalid_expiry"
