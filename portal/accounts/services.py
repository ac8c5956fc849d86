"""Changing accounts: organisations, memberships, API tokens. Each change is audited."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from portal.accounts.actor import Actor
from portal.accounts.exceptions import (
    AlreadyMember,
    InvalidExpiry,
    LastAdmin,
    RateTooHigh,
    RoleTooHigh,
    TokensCannotManageTokens,
)
from portal.accounts.models import ApiToken, Invitation, InvitationStatus, Membership, Organization, User
from portal.accounts.roles import Cap, Role, role_within
from portal.platform.exceptions import Forbidden, NotFound
from portal.platform.locks import for_update
from portal.platform.prebuilt import Prebuilt

TOKEN_PREFIX = "stw_"  # noqa: S105  (a public prefix, not a secret)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once, never stored


@transaction.atomic
def organization_create(*, name: str, slug: str, actor: AuditActor) -> Organization:
    organization = Organization.objects.create(name=name, slug=slug)
    audit_record(
        action="organization.created",
        actor=actor,
        organization_id=organization.pk,
        target_type="accounts.Organization",
        target_id=organization.pk,
        payload={"name": name, "slug": slug},
    )
    return organization


@transaction.atomic
def membership_create_unchecked(
    *, user: User, organization: Organization, role: Role, actor: AuditActor
) -> Membership:
    """Adds a member without checking the actor's rights (set-up commands and the services below)."""
    if Membership.objects.filter(user=user, organization=organization).exists():
        raise AlreadyMember(gettext('%(username)s is already a member of %(name)s.') % {"username": user.username, "name": organization.name})
    membership = Membership.objects.create(user=user, organization=organization, role=role)
    audit_record(
        action="membership.created",
        actor=actor,
        organization_id=organization.pk,
        target_type="accounts.User",
        target_id=user.pk,
        payload={"username": user.username, "role": role.value},
    )
    return membership


def _check_can_manage(actor: Actor) -> None:
    if not actor.can(Cap.ORG_MANAGE):
        raise Forbidden(gettext('Only an organisation admin can manage members.'))


INVITATION_DAYS = 14


@transaction.atomic
def invitation_create(*, actor: Actor, username: str, role: Role) -> Invitation:
    """Invites `username` to the actor's organisation in `role`. The answer is the same whether or
    not such a user exists: admins learn nothing of other organisations' users (no existence
    oracle), and nobody joins an organisation without accepting."""
    _check_can_manage(actor)
    username = username.strip()
    if Membership.objects.filter(organization=actor.organization, user__username=username).exists():
        raise AlreadyMember(gettext('%(username)s is already a member of %(name)s.') % {"username": username, "name": actor.organization.name})
    Invitation.objects.filter(organization=actor.organization, username=username,
                              status=InvitationStatus.PENDING).update(status=InvitationStatus.REVOKED,
                                                                      answered_at=timezone.now())
    invitation = Invitation.objects.create(
        organization=actor.organization, username=username, role=role, invited_by=actor.user,
        expires_at=timezone.now() + timedelta(days=INVITATION_DAYS),
    )
    audit_record(action="invitation.created", actor=actor.audit_actor, organization_id=actor.organization.pk,
                 target_type="accounts.Invitation", target_id=invitation.pk,
                 payload={"username": username, "role": role.value})
    return invitation


@transaction.atomic
def invitation_revoke(*, actor: Actor, invitation: Invitation) -> Invitation:
    _check_can_manage(actor)
    if Invitation.objects.filter(pk=invitation.pk, status=InvitationStatus.PENDING).update(
            status=InvitationStatus.REVOKED, answered_at=timezone.now()):
        audit_record(action="invitation.revoked", actor=actor.audit_actor, organization_id=invitation.organization_id,
                     target_type="accounts.Invitation", target_id=invitation.pk,
                     payload={"username": invitation.username})
    invitation.refresh_from_db()
    return invitation


def invitations_for_user(*, user: User) -> list[Invitation]:
    """The pending, unexpired invitations addressed to `user` (by their username)."""
    return list(Invitation.objects.filter(username=user.username, status=InvitationStatus.PENDING,
                                          expires_at__gt=timezone.now()).select_related("organization", "invited_by"))


@transaction.atomic
def invitation_answer(*, user: User, invitation_id: int, accept: bool) -> Invitation:
    """The invited user accepts (becoming a member in the role offered) or declines.

    Raises NotFound for an invitation that is not this user's, not pending, or expired: no one
    learns of an invitation addressed to someone else.
    """
    invitation = (for_update(Invitation.objects.select_related("organization"))
                  .filter(pk=invitation_id, username=user.username, status=InvitationStatus.PENDING,
                          expires_at__gt=timezone.now()).first())
    if invitation is None or not user.is_active:
        raise NotFound(gettext('No such invitation is waiting for you.'))
    invitation.status = InvitationStatus.ACCEPTED if accept else InvitationStatus.DECLINED
    invitation.answered_at = timezone.now()
    invitation.save(update_fields=["status", "answered_at"])
    audit_record(action=f"invitation.{invitation.status}", actor=AuditActor(type="user", id=str(user.pk),
                 label=user.username), organization_id=invitation.organization_id,
                 target_type="accounts.Invitation", target_id=invitation.pk,
                 payload={"username": user.username, "role": invitation.role})
    if accept and not Membership.objects.filter(user=user, organization=invitation.organization).exists():
        membership_create_unchecked(user=user, organization=invitation.organization, role=Role(invitation.role),
                                    actor=AuditActor(type="user", id=str(user.pk), label=user.username))
    return invitation


@transaction.atomic
def membership_role_change(*, actor: Actor, membership: Membership, role: Role) -> Membership:
    _check_can_manage(actor)
    # Lock the organisation's admins so that two demotions at once cannot leave none.
    admins = list(
        for_update(Membership.objects.filter(organization=membership.organization, role=Role.ADMIN))
        .values_list("pk", flat=True)
    )
    if membership.role == Role.ADMIN and role != Role.ADMIN and admins == [membership.pk]:
        raise LastAdmin()
    old = membership.role
    if old == role:
        return membership
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        action="membership.role_changed",
        actor=actor.audit_actor,
        organization_id=membership.organization_id,
        target_type="accounts.User",
        target_id=membership.user_id,
        payload={"username": membership.user.username, "from": old, "to": role.value},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    """Removes a member: their tokens for this organisation are revoked with it, and the
    organisation keeps at least one admin. What they did stays in the log, under their name.

    Raises:
        LastAdmin (409): the only admin.
    """
    _check_can_manage(actor)
    admins = list(for_update(Membership.objects.filter(organization=membership.organization, role=Role.ADMIN))
                  .values_list("pk", flat=True))
    if admins == [membership.pk]:
        raise LastAdmin()
    revoked = ApiToken.objects.filter(user_id=membership.user_id, organization_id=membership.organization_id,
                                      revoked_at__isnull=True).update(revoked_at=timezone.now())
    Membership.objects.filter(pk=membership.pk).delete()
    audit_record(
        action="membership.removed", actor=actor.audit_actor, organization_id=membership.organization_id,
        target_type="accounts.User", target_id=membership.user_id,
        payload={"username": membership.user.username, "role": membership.role, "tokens_revoked": revoked},
    )


@transaction.atomic
def token_create(
    *,
    actor: Actor,
    name: str,
    role: Role,
    expires_in_days: int | None = 90,
    rate_per_minute: int | None = None,
) -> NewToken:
    """Creates an API token for the actor in the actor's organisation.

    Raises:
        TokensCannotManageTokens: the actor is itself a token.
        RoleTooHigh: the role grants something the actor's own role does not.
        InvalidExpiry: no expiry, or one beyond the organisation's limit (a token that never expires
            is for operators, made on the command line).
        RateTooHigh: a rate above the organisation's limit.
    """
    if actor.token is not None:
        raise TokensCannotManageTokens()
    organization = actor.organization
    max_days = organization.token_days_limit
    if expires_in_days is None or not 1 <= expires_in_days <= max_days:
        raise InvalidExpiry(gettext("A token expires after 1 to %(max_days)s days (the organisation's limit).") % {"max_days": max_days},
                            details={"max_days": max_days})
    max_rate = organization.token_rate_limit
    if rate_per_minute is not None and not 1 <= rate_per_minute <= max_rate:
        raise RateTooHigh(gettext("A token may make 1 to %(max_rate)s requests a minute (the organisation's limit).") % {"max_rate": max_rate},
                          details={"max_rate_per_minute": max_rate})
    if not role_within(role, actor.role):
        raise RoleTooHigh(
            gettext('A %(value)s cannot create a %(value2)s token: a token may not do more than its creator.') % {"value": actor.role.value, "value2": role.value},
            details={"your_role": actor.role.value, "requested_role": role.value},
        )
    return token_create_unchecked(
        user=actor.user,
        organization=actor.organization,
        name=name,
        role=role,
        expires_in_days=expires_in_days,
        rate_per_minute=rate_per_minute,
        actor=actor.audit_actor,
    )


@transaction.atomic
def token_create_unchecked(
    *,
    user: User,
    organization: Organization,
    name: str,
    role: Role,
    expires_in_days: int | None,
    rate_per_minute: int | None,
    actor: AuditActor,
) -> NewToken:
    """Creates a token, checking only that the user's membership allows the role (the CLI)."""
    membership = Membership.objects.filter(user=user, organization=organization).first()
    if membership is None:
        raise Forbidden(gettext('%(username)s is not a member of %(name)s.') % {"username": user.username, "name": organization.name})
    if not role_within(role, membership.role):
        raise RoleTooHigh(
            gettext('%(username)s is a %(role)s and cannot hold a %(value)s token.') % {"username": user.username, "role": membership.role, "value": role.value}
        )
    max_days = settings.API_TOKEN_MAX_DAYS
    if expires_in_days is not None and not 1 <= expires_in_days <= max_days:
        raise InvalidExpiry(gettext('A token expires after 1 to %(max_days)s days.') % {"max_days": max_days})
    if rate_per_minute is not None and not 1 <= rate_per_minute <= settings.API_TOKEN_MAX_RATE_PER_MINUTE:
        raise RateTooHigh(gettext('A token may make 1 to %(API_TOKEN_MAX_RATE_PER_MINUTE)s requests a minute.') % {"API_TOKEN_MAX_RATE_PER_MINUTE": settings.API_TOKEN_MAX_RATE_PER_MINUTE})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        user=user,
        name=name,
        role=role,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        key_hash=_hash_key(secret),
        rate_per_minute=rate_per_minute,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    audit_record(
        action="token.created",
        actor=actor,
        organization_id=organization.pk,
        target_type="accounts.ApiToken",
        target_id=token.pk,
        payload={
            "name": name,
            "role": role.value,
            "prefix": token.prefix,
            "user": user.username,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return NewToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    if actor.token is not None:
        raise TokensCannotManageTokens()
    if token.user_id != actor.user.pk and not actor.can(Cap.TOKEN_MANAGE_ANY):
        raise Forbidden(gettext('You can revoke only your own tokens.'))
    # Conditional update: revoking twice is a no-op, and records one event.
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db()
    if revoked:
        audit_record(
            action="token.revoked",
            actor=actor.audit_actor,
            organization_id=token.organization_id,
            target_type="accounts.ApiToken",
            target_id=token.pk,
            payload={"name": token.name, "prefix": token.prefix},
        )
    return token


def token_find_by_key(*, key: str) -> ApiToken | None:
    """The token whose secret is `key`, whatever its state (the caller tells why it fails).

    With its user and organisation, and annotated with `member_role`: its user's role in its
    organisation today (None if no longer a member). One query, as every API request asks it.
    """
    found = _TOKEN_LOOKUP.fetch_one([_hash_key(key)])  # the ORM's compiling took 1.1 ms a request
    if found is None:
        return None
    (token, user, organization), (role,) = found
    assert isinstance(token, ApiToken)
    ApiToken.user.field.set_cached_value(token, user)
    ApiToken.organization.field.set_cached_value(token, organization)
    token.member_role = role  # type: ignore[attr-defined]
    return token


_TOKEN_LOOKUP = Prebuilt(
    [(ApiToken, "t"), (User, "u"), (Organization, "o")],
    "FROM {ApiToken} t INNER JOIN {User} u ON u.{User.id} = t.{ApiToken.user} "
    "INNER JOIN {Organization} o ON o.{Organization.id} = t.{ApiToken.organization} WHERE t.{ApiToken.key_hash} = %s",
    extra=["(SELECT m.{Membership.role} FROM {Membership} m WHERE m.{Membership.user} = t.{ApiToken.user} "
           "AND m.{Membership.organization} = t.{ApiToken.organization} LIMIT 1)"],
    names=[Membership],
)


def token_touch(*, token: ApiToken) -> None:
    """Records the last use, at most once a minute (a write on every request would not scale)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
