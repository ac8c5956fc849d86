from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.log.services import log_verify


class Command(BaseCommand):
    help = "Verifies the whole audit log against its signed checkpoints; exits 1 on a fault."

    def handle(self, *args: Any, **options: Any) -> None:
        run = log_verify()
        if not run.ok:
            raise CommandError(run.summary)
        self.stdout.write(f"{run.summary} ({run.seconds:.2f} s)")
