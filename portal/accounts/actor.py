"""Who is acting, for which organisation, with which rights: resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext

from audit.log.services import AuditActor
from portal.accounts.models import ApiToken, Organization, User
from portal.accounts.roles import Cap, Role, capabilities


@dataclass(frozen=True)
class Actor:
    user: User
    organization: Organization
    role: Role  # the membership's role, or the token's where a token is used
    capabilities: frozenset[Cap]
    token: ApiToken | None = None

    def can(self, cap: Cap) -> bool:
        return cap in self.capabilities

    def require(self, cap: Cap, what: str) -> None:
        """Raises Forbidden (403) with the role and `what` it may not do, unless the actor can."""
        if cap not in self.capabilities:
            from portal.platform.exceptions import Forbidden

            raise Forbidden(gettext('Your role (%(value)s) cannot %(what)s.') % {"value": self.role.value, "what": what})

    @property
    def audit_actor(self) -> AuditActor:
        if self.token is not None:
            return AuditActor(
                type="token",
                id=str(self.token.pk),
                label=f"{self.user.username} via token {self.token.prefix}",
            )
        return AuditActor(type="user", id=str(self.user.pk), label=self.user.username)


def actor_for_membership(user: User, organization: Organization, role: str) -> Actor:
    return Actor(user=user, organization=organization, role=Role(role), capabilities=capabilities(role))


def actor_for_token(token: ApiToken, membership_role: str) -> Actor:
    # A token never grants more than its user has now: demoting a member narrows their tokens.
    caps = capabilities(token.role) & capabilities(membership_role)
    return Actor(
        user=token.user,
        organization=token.organization,
        role=Role(token.role),
        capabilities=caps,
        token=token,
    )


def user_audit_actor(user: User) -> AuditActor:
    return AuditActor(type="user", id=str(user.pk), label=user.username)
