"""DRF authentication of bearer tokens.

Browser sessions use DRF's SessionAuthentication (CSRF enforced); their actor is resolved by
CurrentOrganizationMiddleware from the organisation chosen in the switcher.
"""

from __future__ import annotations

from typing import Any

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from portal.accounts.actor import Actor, actor_for_token
from portal.accounts.models import ApiToken, User
from portal.accounts.services import token_find_by_key, token_touch


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header: expected 'Bearer <token>'.")
            )
        token = token_find_by_key(key=parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed(_("This API token is not valid."))
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This API token has been revoked."))
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(
                _("This API token expired on %(at)s UTC.") % {"at": formats.date_format(token.expires_at, "DATETIME_FORMAT")}
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The user of this API token is deactivated."))
        role = token.member_role  # type: ignore[attr-defined]
        if role is None:
            raise exceptions.AuthenticationFailed(
                _("The user of this API token is no longer a member of its organisation.")
            )
        token_touch(token=token)
        request._request.actor = actor_for_token(token, role)  # type: ignore[attr-defined]
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def request_actor(request: Any) -> Actor | None:
    """The actor of a DRF or Django request, once authentication has run."""
    django_request = getattr(request, "_request", request)
    return getattr(django_request, "actor", None)
