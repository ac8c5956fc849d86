"""Creates the demo organisations and one user per role, with generated passwords.

Running it again reuses what is there: the passwords, generated once, are kept in
<data folder>/demo-credentials.json (mode 0600) and printed again.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from audit.log.services import AuditActor
from portal.accounts.models import Membership, Organization, User
from portal.accounts.roles import Role
from portal.accounts.services import membership_create_unchecked, organization_create

SETUP = AuditActor(type="system", label="manage.py setup_demo")
DEMO_ORG = ("Demo Bank", "demo")
SECOND_ORG = ("Demo Clinic", "clinic")
USERS = {
    "demo-admin": Role.ADMIN,
    "demo-owner": Role.OWNER,
    "demo-reviewer": Role.REVIEWER,
    "demo-auditor": Role.AUDITOR,
    "demo-consumer": Role.CONSUMER,
}


def credentials_path() -> Path:
    return Path(settings.DATA_DIR) / "demo-credentials.json"


class Command(BaseCommand):
    help = "Creates the demo organisation and users (one per role); prints their passwords."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="do not print the passwords")

    def handle(self, *args: Any, **options: Any) -> None:
        path = credentials_path()
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            bank = self._organization(*DEMO_ORG)
            clinic = self._organization(*SECOND_ORG)
            for username, role in USERS.items():
                user = User.objects.filter(username=username).first()
                if user is None:
                    password = secrets.token_urlsafe(12)
                    user = User.objects.create_user(username=username, password=password)
                    stored[username] = password
                self._member(user, bank, role)
            # The admin also works in a second organisation, to show the switcher and tenancy.
            self._member(User.objects.get(username="demo-admin"), clinic, Role.OWNER)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=2)
        if not options["quiet"]:
            self.stdout.write(f"Demo users (passwords kept in {path}):")
            for username, role in USERS.items():
                password = stored.get(username, "(changed by its user)")
                self.stdout.write(f"  {username:<15} {role.value:<9} {password}")

    @staticmethod
    def _organization(name: str, slug: str) -> Organization:
        existing = Organization.objects.filter(slug=slug).first()
        return existing or organization_create(name=name, slug=slug, actor=SETUP)

    @staticmethod
    def _member(user: User, organization: Organization, role: Role) -> None:
        if not Membership.objects.filter(user=user, organization=organization).exists():
            membership_create_unchecked(user=user, organization=organization, role=role, actor=SETUP)
