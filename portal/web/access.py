"""The pages' checks of who may see them, shared by every app's UI."""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.functional import Promise

from portal.accounts import services


def member_required(view: Any) -> Any:
    """Signed in and a member of an organisation; the view gets `request.actor`."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "actor", None) is None:
            return render(request, "portal/no_organization.html", status=403,
                          context={"invitations": services.invitations_for_user(user=request.user)})  # type: ignore[arg-type]
        return view(request, *args, **kwargs)

    return wrapper


def capability_required(capability: str, what: str | Promise) -> Any:
    """`member_required`, and the member's role holds `capability`; else the 403 page saying the
    role does not allow `what` (e.g. "read compliance exports")."""

    def decorate(view: Any) -> Any:
        @member_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.actor.can(capability):  # type: ignore[attr-defined]
                return forbidden(request, what)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def forbidden(request: HttpRequest, what: str | Promise) -> HttpResponse:
    """The page for a member whose role does not allow `what` (403)."""
    return render(request, "portal/forbidden.html", {"what": what}, status=403)


def htmx_progress(request: HttpRequest, *, running: bool, template: str, context: dict[str, Any]) -> HttpResponse | None:
    """Answers htmx polling a job's progress card: the card while the job runs, then a refresh of the
    whole page (which then shows the result); None for an ordinary request, which renders the page."""
    if not request.htmx:  # type: ignore[attr-defined]
        return None
    if running:
        return render(request, template, context)
    finished = HttpResponse(status=200)  # htmx swaps only 2xx; the header does the work
    finished["HX-Refresh"] = "true"
    return finished
