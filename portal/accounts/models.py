from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from portal.accounts.roles import Role


class User(AbstractUser):
    """A person. What they may do depends on the organisation they act in (Membership)."""

    # The language the person chose in the top bar's switcher (a code of settings.KNOWN_LANGUAGES), kept
    # across browsers and sessions; empty: the browser's (Accept-Language).
    language = models.CharField(max_length=16, blank=True, default="")


class Organization(models.Model):
    """A tenant. Every object of the product belongs to exactly one."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    daily_row_quota = models.PositiveIntegerField(
        default=100_000, help_text="Rows a day that the organisation's calls may predict."
    )
    daily_token_quota = models.PositiveBigIntegerField(
        default=2_000_000, help_text="Tokens a day (prompt and completion) that the organisation's calls may generate."
    )
    token_max_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest a member's API token may live (empty: API_TOKEN_MAX_DAYS)."
    )
    token_max_rate_per_minute = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="The highest request rate a member may give a token (empty: API_TOKEN_MAX_RATE_PER_MINUTE).",
    )

    def __str__(self) -> str:
        return self.name

    @property
    def token_days_limit(self) -> int:
        from django.conf import settings

        return min(self.token_max_days or settings.API_TOKEN_MAX_DAYS, settings.API_TOKEN_MAX_DAYS)

    @property
    def token_rate_limit(self) -> int:
        from django.conf import settings

        return min(self.token_max_rate_per_minute or settings.API_TOKEN_MAX_RATE_PER_MINUTE,
                   settings.API_TOKEN_MAX_RATE_PER_MINUTE)


class MembershipQuerySet(models.QuerySet["Membership"]):
    def active(self) -> MembershipQuerySet:
        return self.filter(user__is_active=True)


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in Role])
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")
        ]
        ordering = ["organization__name"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token for the REST API, bound to one user, one organisation and one role.

    Only a SHA-256 of the secret is stored: tokens are 256-bit random, so a fast hash is as safe
    as a slow one, and lets every request find its token with one indexed lookup.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in Role])
    prefix = models.CharField(max_length=16, help_text="Shown to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class InvitationStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"


class Invitation(models.Model):
    """An admin's offer of a role to a user, who becomes a member only by accepting it.

    Made for a username whether or not such a user exists, and answered the same way, so that an
    organisation's admin learns nothing of other organisations' users; it waits until someone of
    that name accepts or declines it, or it is revoked or expires.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in Role])
    invited_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["username", "status"])]
