"""Sign-ins and failed sign-ins go to the audit log (they are security-relevant: issue 4)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.log.services import AuditActor, audit_record
from portal.accounts.models import User


def _address(request: Any) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    audit_record(
        action="user.logged_in",
        actor=AuditActor(type="user", id=str(user.pk), label=user.username),
        organization_id=None,
        target_type="accounts.User",
        target_id=user.pk,
        payload={"address": _address(request)},
    )


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: User | None, **kwargs: Any) -> None:
    if user is None:
        return
    audit_record(
        action="user.logged_out",
        actor=AuditActor(type="user", id=str(user.pk), label=user.username),
        organization_id=None,
        target_type="accounts.User",
        target_id=user.pk,
    )


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))[:150]
    user = User.objects.filter(username=username).only("pk").first()
    audit_record(
        action="user.login_failed",
        actor=AuditActor(type="anonymous", label=username),
        organization_id=None,
        target_type="accounts.User",
        target_id=user.pk if user else "",
        payload={"username": username, "address": _address(request)},
    )
