from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.log.services import log_verify


class Command(BaseCommand):
    help = ("Verifies the whole audit log against its signed checkpoints, the witness's and any an auditor saved. "
            "Exits 0 when every entry is verified, 2 when entries after the last signed checkpoint are not yet "
            "verified (an unverified tail), 1 on a fault.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--known-checkpoints", type=Path, action="append", default=[],
                            help="signed checkpoints saved earlier (JSON lines, or the JSON list GET "
                                 "/api/v1/audit/checkpoints gives): each must verify against the log and still be "
                                 "in the database")

    def handle(self, *args: Any, **options: Any) -> None:
        from audit.log.witness import checkpoints_read

        known = []
        for path in options["known_checkpoints"]:
            try:
                known += list(checkpoints_read(path))
            except (OSError, ValueError, KeyError) as exc:
                raise CommandError(f"cannot read the checkpoints in {path}: {exc}") from None
        run = log_verify(known=known)
        if run.fault_kind and run.fault_kind != "unverified_tail":
            raise CommandError(run.summary)
        self.stdout.write(f"{run.summary} ({run.seconds:.2f} s)")
        if not run.ok:
            sys.exit(2)
