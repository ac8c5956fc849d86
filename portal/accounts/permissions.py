from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from portal.accounts.authentication import request_actor
from portal.accounts.roles import Cap


class HasCapability(permissions.BasePermission):
    """Allows a view to those whose role grants its `required_capability`.

    A view declares `required_capability` (one for all methods) or a dict by HTTP method.
    Views that need no organisation set it to None (and still need a signed-in user).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated(
                _("Authentication required: send 'Authorization: Bearer <token>' or sign in.")
            )
        if getattr(view, "for_any_signed_in_user", False):  # a user's own business, in no organisation
            return True
        required = getattr(view, "required_capability", "missing")
        if isinstance(required, dict):
            if request.method not in required:  # a method the view does not serve: 405, not a crash
                raise exceptions.MethodNotAllowed(request.method or "")
            required = required[request.method]
        if required == "missing":
            raise AssertionError(f"{type(view).__name__} declares no required_capability")
        actor = request_actor(request)
        if actor is None:
            raise exceptions.PermissionDenied(
                _("You are not a member of any organisation; ask an admin to add you.")
            )
        if required is None:
            return True
        if not actor.can(Cap(required)):
            raise exceptions.PermissionDenied(
                _("Your role (%(role)s) does not allow this (%(capability)s).")
                % {"role": actor.role.value, "capability": required}
            )
        return True
