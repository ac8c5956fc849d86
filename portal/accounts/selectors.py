"""Reading accounts data, always within what the actor may see (404 otherwise, never the object)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext

from portal.accounts.actor import Actor
from portal.accounts.models import ApiToken, ApiTokenQuerySet, Invitation, Membership, Organization, User
from portal.accounts.roles import Cap
from portal.platform.exceptions import NotFound


def membership_get(*, user: User, organization_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("organization")
        .filter(user=user, organization_id=organization_id, user__is_active=True)
        .first()
    )


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization")


def organization_list_for_actor(*, actor: Actor) -> list[Organization]:
    if actor.token is not None:  # a token acts for its one organisation only
        return [actor.organization]
    return [m.organization for m in membership_list_for_user(user=actor.user)]


def membership_list(*, actor: Actor) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=actor.organization)
        .select_related("user")
        .order_by("user__username")
    )


def membership_get_for_actor(*, actor: Actor, pk: int) -> Membership:
    membership = membership_list(actor=actor).filter(pk=pk).first()
    if membership is None:
        raise NotFound(gettext('No such member in this organisation.'))
    return membership


def token_list_for_actor(*, actor: Actor) -> ApiTokenQuerySet:
    tokens: ApiTokenQuerySet = ApiToken.objects.filter(organization=actor.organization).select_related("user")  # type: ignore[assignment]
    if not actor.can(Cap.TOKEN_MANAGE_ANY):
        tokens = tokens.filter(user=actor.user)
    return tokens


def token_get_for_actor(*, actor: Actor, pk: int) -> ApiToken:
    token = token_list_for_actor(actor=actor).filter(pk=pk).first()
    if token is None:
        raise NotFound(gettext('No such token in this organisation.'))
    return token


def member_user_ids(*, organization: Organization) -> list[int]:
    return list(Membership.objects.filter(organization=organization).values_list("user_id", flat=True))


def invitation_list_sent(*, actor: Actor) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=actor.organization).select_related("organization", "invited_by")


def invitation_get_sent(*, actor: Actor, pk: int) -> Invitation:
    found = invitation_list_sent(actor=actor).filter(pk=pk).first()
    if found is None:
        raise NotFound(gettext('No such invitation in this organisation.'))
    return found
