"""Row locks never stop the commits that refer to the locked rows (portal/platform/locks.py).

The regression: removing a member locked the organisation's row (FOR UPDATE through Membership's
ordering by organisation name); a transaction that had appended to the audit log (holding its head)
and inserted a row referring to the organisation then waited at COMMIT, for its deferred foreign-key
check, on the removal, which waited for the head: PostgreSQL broke the deadlock by failing the removal
(CI's schemathesis run: DELETE /api/v1/members/2 answered 503).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from audit.log.models import LogEntry
from audit.log.services import AuditActor
from portal.accounts.actor import actor_for_membership
from portal.accounts.models import ApiToken, Membership
from portal.accounts.roles import Role
from portal.accounts.services import membership_remove, token_create_unchecked
from portal.platform.locks import for_update
from tests.portal.accounts.factories import OrganizationFactory, member, token_for
from tests.waits import until

ROOT = Path(__file__).resolve().parents[2]
postgresql = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks are PostgreSQL's")


def _pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _waits_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        found = cursor.fetchone()
    return found is not None and found[0] == "Lock"


def _in_thread(target, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@postgresql
@pytest.mark.django_db(transaction=True)
def test_a_member_removed_while_an_audited_commit_refers_to_the_organisation() -> None:
    organization = OrganizationFactory()
    admin = member(Role.ADMIN, organization)
    leaving = member(Role.CONSUMER, organization)
    token_for(leaving, organization)
    newcomer = member(Role.OWNER, organization)
    actor = actor_for_membership(admin, organization, Role.ADMIN)
    membership = Membership.objects.get(user=leaving, organization=organization)

    holds_head, release = threading.Event(), threading.Event()
    pids: dict[str, int] = {}
    errors: list[BaseException] = []

    def audited_commit() -> None:
        # A token made in the organisation: a row whose foreign key to it is checked at COMMIT,
        # after the append that took the audit log's head (as a prediction's transaction does).
        with transaction.atomic():
            token_create_unchecked(user=newcomer, organization=organization, name="meanwhile", role=Role.OWNER,
                                   expires_in_days=30, rate_per_minute=None, actor=AuditActor.system("tests"))
            pids["commit"] = _pid()
            holds_head.set()
            release.wait(120)

    def removal() -> None:
        pids["removal"] = _pid()
        membership_remove(actor=actor, membership=membership)

    committing = _in_thread(audited_commit, errors)
    assert holds_head.wait(120), errors
    removing = _in_thread(removal, errors)
    # the removal has taken its locks and waits for the audit log's head
    until(lambda: ("removal" in pids and _waits_on_a_lock(pids["removal"])) or not removing.is_alive(),
          within=30, what="the removal waiting for the audit log's head")
    release.set()
    committing.join(120)
    removing.join(120)

    assert errors == []
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert not ApiToken.objects.filter(user=leaving, revoked_at__isnull=True).exists()
    assert ApiToken.objects.filter(user=newcomer, name="meanwhile").exists()
    assert set(LogEntry.objects.filter(organization_id=organization.pk).values_list("action", flat=True)) >= {
        "membership.removed", "token.created"}


@postgresql
@pytest.mark.django_db(transaction=True)
def test_a_locked_row_still_takes_references_but_not_another_writer() -> None:
    organization = OrganizationFactory()
    admin = member(Role.ADMIN, organization)
    locked, release, errors = threading.Event(), threading.Event(), []

    def writer() -> None:
        with transaction.atomic():
            list(for_update(Membership.objects.filter(organization=organization, role=Role.ADMIN)))
            locked.set()
            release.wait(120)

    thread = _in_thread(writer, errors)
    assert locked.wait(120), errors
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # a foreign-key check's lock, on the organisation and on the locked row itself
            cursor.execute("SELECT 1 FROM accounts_organization WHERE id = %s FOR KEY SHARE NOWAIT", [organization.pk])
            cursor.execute("SELECT 1 FROM accounts_membership WHERE user_id = %s FOR KEY SHARE NOWAIT", [admin.pk])
        with pytest.raises(Exception, match="could not obtain lock"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM accounts_membership WHERE user_id = %s FOR NO KEY UPDATE NOWAIT", [admin.pk])
    finally:
        release.set()
        thread.join(120)
    assert errors == []


def test_rows_are_locked_only_through_for_update() -> None:
    """A bare select_for_update() would lock, FOR UPDATE, every table its query joins."""
    found = [f"{path.relative_to(ROOT)}:{number}"
             for top in ("portal", "inference", "audit") for path in (ROOT / top).rglob("*.py")
             if path.name != "locks.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\.select_for_update\(", line)]
    assert found == []


@postgresql
@pytest.mark.django_db(transaction=True)
def test_a_transaction_undone_by_contention_is_said_as_such_not_as_an_outage() -> None:
    from django.db import OperationalError
    from rest_framework.test import APIRequestFactory

    from portal.platform.exceptions import api_exception_handler
    from portal.platform.outages import CONFLICT, outage_of

    organization = OrganizationFactory()
    locked, release, errors = threading.Event(), threading.Event(), []

    def writer() -> None:
        with transaction.atomic():
            list(for_update(type(organization).objects.filter(pk=organization.pk)))
            locked.set()
            release.wait(120)

    thread = _in_thread(writer, errors)
    assert locked.wait(120), errors
    try:
        with pytest.raises(OperationalError) as refused, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM accounts_organization WHERE id = %s FOR UPDATE NOWAIT", [organization.pk])
    finally:
        release.set()
        thread.join(120)
    assert outage_of(refused.value) == CONFLICT
    request = APIRequestFactory().delete("/api/v1/members/2")
    response = api_exception_handler(refused.value, {"request": request})
    assert response is not None and response.status_code == 503 and response["Retry-After"] == "1"
    error = response.data["error"]
    assert error["details"]["reason"] == CONFLICT and "undone whole" in error["message"]
    assert "cannot reach" not in error["message"]
