from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.log.services import AuditActor
from portal.accounts.models import Organization, User
from portal.accounts.roles import Role
from portal.accounts.services import token_create_unchecked
from portal.platform.exceptions import PortalError


class Command(BaseCommand):
    help = "Creates an API token for a member of an organisation and prints it (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--role", default=Role.CONSUMER.value, choices=[r.value for r in Role])
        parser.add_argument("--name", default="cli")
        parser.add_argument("--days", type=int, default=90, help="days until it expires")
        parser.add_argument("--rate", type=int, default=None, help="requests per minute")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {options['user']!r}")
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"no organisation with slug {options['org']!r}")
        try:
            new = token_create_unchecked(
                user=user,
                organization=organization,
                name=options["name"],
                role=Role(options["role"]),
                expires_in_days=options["days"],
                rate_per_minute=options["rate"],
                actor=AuditActor(type="system", label="manage.py create_token"),
            )
        except PortalError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(new.secret)
