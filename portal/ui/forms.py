from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxValueValidator
from django.utils.translation import gettext_lazy as _

from portal.accounts import lockout
from portal.accounts.roles import ROLE_LABELS, Role


def client_address(request: Any) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


class LockoutAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked_out": _(
            "Too many failed sign-ins. Sign-in is locked for %(minutes)d minutes; "
            "ask an admin if this was not you."
        ),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        locked = {"minutes": max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)}
        # counted before the password is checked: concurrent attempts cannot overtake the count
        if not lockout.attempt_admit(username=username, address=address):
            raise forms.ValidationError(self.error_messages["locked_out"], code="locked_out", params=locked)
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if lockout.attempt_failed(username=username, address=address):
                raise forms.ValidationError(
                    self.error_messages["locked_out"], code="locked_out", params=locked
                ) from None
            raise
        # the count is given back by the view once the sign-in is logged (LoginView.form_valid), so
        # the audit log shows every failure evaluated before a success ahead of it
        return cleaned


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=80, label=_("Name"), help_text=_("What it is for, e.g. 'claims service'."))
    role = forms.ChoiceField(label=_("Role"), choices=[(r.value, ROLE_LABELS[r]) for r in Role],
                             initial=Role.CONSUMER.value)
    expires_in_days = forms.IntegerField(min_value=1, initial=90, label=_("Expires in (days)"))

    def __init__(self, *args: Any, allowed_roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role = self.fields["role"]
        assert isinstance(role, forms.ChoiceField)
        role.choices = [(r, ROLE_LABELS[Role(r)]) for r in allowed_roles]
        days = self.fields["expires_in_days"]
        assert isinstance(days, forms.IntegerField)
        days.max_value = settings.API_TOKEN_MAX_DAYS
        days.validators.append(MaxValueValidator(settings.API_TOKEN_MAX_DAYS))
