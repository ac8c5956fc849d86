from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from audit.log.context import current_request_id
from portal.accounts.actor import actor_for_membership
from portal.accounts.models import Membership
from portal.accounts.selectors import membership_list_for_user

SESSION_ORG_KEY = "organization_id"


class CurrentOrganizationMiddleware:
    """Resolves the organisation a signed-in browser user acts in (the switcher's choice).

    Sets `request.membership` and `request.actor` (None when the user belongs to none), and binds
    the request id for the audit log.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        reset = current_request_id.set(getattr(request, "request_id", ""))
        try:
            request.membership = None  # type: ignore[attr-defined]
            request.actor = None  # type: ignore[attr-defined]
            if request.user.is_authenticated:
                membership = self._membership(request)
                request.membership = membership  # type: ignore[attr-defined]
                if membership is not None:
                    request.actor = actor_for_membership(  # type: ignore[attr-defined]
                        request.user, membership.organization, membership.role  # type: ignore[arg-type]
                    )
            return self.get_response(request)
        finally:
            current_request_id.reset(reset)

    @staticmethod
    def _membership(request: HttpRequest) -> Membership | None:
        memberships = list(membership_list_for_user(user=request.user))  # type: ignore[arg-type]
        request.memberships = memberships  # type: ignore[attr-defined]
        if not memberships:
            return None
        chosen = request.session.get(SESSION_ORG_KEY)
        for membership in memberships:
            if membership.organization_id == chosen:
                return membership
        request.session[SESSION_ORG_KEY] = memberships[0].organization_id
        return memberships[0]


class UserLanguageMiddleware:
    """A signed-in person's chosen language over the browser's: LocaleMiddleware (before it) has read
    the language cookie and Accept-Language; the choice stored on the user follows them to any browser.
    A language no longer offered is ignored. API calls with a token are not signed in here: they follow
    Accept-Language."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = getattr(request.user, "language", "") if request.user.is_authenticated else ""
        if chosen and chosen in dict(settings.LANGUAGES) and chosen != translation.get_language():
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen  # type: ignore[attr-defined]
        return self.get_response(request)
