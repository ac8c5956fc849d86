from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from portal.accounts import lockout, selectors, services
from portal.accounts.middleware import SESSION_ORG_KEY
from portal.accounts.roles import ROLE_DESCRIPTIONS, ROLE_LABELS, Cap, Role, role_within
from portal.platform.exceptions import PortalError
from portal.ui.forms import LockoutAuthenticationForm, TokenCreateForm, client_address
from portal.web.access import capability_required, member_required


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = LockoutAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)  # signs in, which appends user.logged_in
        lockout.attempt_succeeded(username=form.cleaned_data.get("username") or "",
                                  address=client_address(self.request))
        return response


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """The top bar's language switcher (the sign-in page's too): remembered on the user when signed in,
    in a cookie otherwise (the cookie too when signed in, for the sign-in page after signing out)."""
    code = request.POST.get("language", "")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = "/"
    if code not in dict(settings.LANGUAGES):
        return render(request, "400.html", {"message": _("That language is not offered here.")}, status=400)
    if request.user.is_authenticated and request.user.language != code:  # type: ignore[union-attr]
        request.user.language = code  # type: ignore[union-attr]
        request.user.save(update_fields=["language"])  # type: ignore[union-attr]
    response = redirect(target)
    response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, max_age=settings.LANGUAGE_COOKIE_AGE or 365 * 86400,
                        path=settings.LANGUAGE_COOKIE_PATH, secure=settings.LANGUAGE_COOKIE_SECURE,
                        httponly=True, samesite="Lax")
    return response


@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    context = {
        "role_description": ROLE_DESCRIPTIONS[actor.role],
        "token_count": selectors.token_list_for_actor(actor=actor).filter(user=actor.user).usable().count(),
        "invitations": services.invitations_for_user(user=actor.user),
    }
    from inference.models import ModelVersion, VersionStatus  # the shell shows each role its own work

    versions = ModelVersion.objects.filter(model__organization=actor.organization)
    if actor.can(Cap.MODEL_REVIEW):
        context["reviews_waiting"] = versions.filter(status=VersionStatus.SUBMITTED).exclude(
            submitted_by=actor.user).count()
    if actor.can(Cap.MODEL_REGISTER):
        context["drafts"] = versions.filter(status__in=[VersionStatus.DRAFT, VersionStatus.REJECTED]).count()
    if actor.can(Cap.AUDIT_READ):
        from audit.log.selectors import verification_latest

        context["verification"] = verification_latest()
    return render(request, "portal/dashboard.html", context)


@login_required
@require_POST
def invitation_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """The invited user accepts or declines, from the dashboard or the no-organisation page."""
    accept = request.POST.get("answer") == "accept"
    try:
        invitation = services.invitation_answer(user=request.user, invitation_id=pk, accept=accept)  # type: ignore[arg-type]
    except PortalError as exc:
        messages.error(request, exc.message)
    else:
        if accept:
            request.session[SESSION_ORG_KEY] = invitation.organization_id
            messages.success(request, _("You joined %(organization)s as %(role)s.") % {
                "organization": invitation.organization.name, "role": ROLE_LABELS[Role(invitation.role)]})
        else:
            messages.info(request, _("You declined the invitation to %(organization)s.") % {
                "organization": invitation.organization.name})
    return redirect("dashboard")


@login_required
@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        organization_id = 0
    membership = selectors.membership_get(user=request.user, organization_id=organization_id)  # type: ignore[arg-type]
    if membership is None:
        messages.error(request, _("You are not a member of that organisation."))
    else:
        request.session[SESSION_ORG_KEY] = membership.organization_id
        messages.success(request, _("Now working in %(organization)s.") % {"organization": membership.organization.name})
    target = request.POST.get("next") or "/"
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")


@member_required
def tokens(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    allowed = [r.value for r in Role if role_within(r, actor.role)]
    form = TokenCreateForm(request.POST or None, allowed_roles=allowed)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.token_create(
                actor=actor,
                name=form.cleaned_data["name"],
                role=Role(form.cleaned_data["role"]),
                expires_in_days=form.cleaned_data["expires_in_days"],
            )
        except PortalError as exc:
            form.add_error(None, exc.message)
        else:
            form = TokenCreateForm(allowed_roles=allowed)
    context = {
        "form": form,
        "created": created,
        "tokens": selectors.token_list_for_actor(actor=actor),
    }
    status = 400 if request.method == "POST" and created is None else 200
    return render(request, "portal/tokens.html", context, status=status)


@member_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    try:
        token = selectors.token_get_for_actor(actor=actor, pk=pk)
        services.token_revoke(actor=actor, token=token)
    except PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Token %(name)s (%(prefix)s…) revoked.") % {"name": token.name, "prefix": token.prefix})
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request, "portal/_token_rows.html",
            {"tokens": selectors.token_list_for_actor(actor=actor)},
        )
    return redirect("tokens")


@capability_required("org.manage", gettext_lazy("manage members"))
def members(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    if request.method == "POST":
        try:
            if "invite" in request.POST:
                invitation = services.invitation_create(actor=actor, username=request.POST.get("username", "")[:150],
                                                        role=Role(request.POST.get("role", "")))
                messages.success(request, _("Invited %(user)s as %(role)s: they join when they accept, from their "
                                            "dashboard.") % {"user": invitation.username,
                                                             "role": ROLE_LABELS[Role(invitation.role)]})
            elif "remove" in request.POST:
                membership = selectors.membership_get_for_actor(actor=actor, pk=int(request.POST["remove"]))
                services.membership_remove(actor=actor, membership=membership)
                messages.success(request, _("%(user)s is no longer a member; their tokens here are revoked.")
                                 % {"user": membership.user.username})
            elif "revoke" in request.POST:
                invitation = selectors.invitation_get_sent(actor=actor, pk=int(request.POST["revoke"]))
                services.invitation_revoke(actor=actor, invitation=invitation)
                messages.success(request, _("The invitation of %(user)s is revoked.") % {"user": invitation.username})
            else:
                membership = selectors.membership_get_for_actor(actor=actor, pk=int(request.POST["membership"]))
                services.membership_role_change(actor=actor, membership=membership, role=Role(request.POST["role"]))
                messages.success(request, _("%(user)s is now %(role)s.") % {
                    "user": membership.user.username, "role": ROLE_LABELS[Role(membership.role)]})
        except (PortalError, KeyError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", _("Choose a member and a valid role.")))
        return redirect("members")
    return render(
        request, "portal/members.html",
        {"members": selectors.membership_list(actor=actor), "roles": [r.value for r in Role],
         "invitations": selectors.invitation_list_sent(actor=actor).filter(status="pending")},
    )
