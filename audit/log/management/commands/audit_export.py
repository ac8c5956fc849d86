from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.log.exports import export_bundle


class Command(BaseCommand):
    help = "Writes an export of the audit log that `python -m audit.log.verify` checks offline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("output", type=Path)
        parser.add_argument("--org-id", type=int, default=None, help="one organisation's entries in full")

    def handle(self, *args: Any, **options: Any) -> None:
        data, size = export_bundle(organization_id=options["org_id"])
        options["output"].write_bytes(data)
        self.stdout.write(f"wrote {options['output']} ({size} entries, {len(data)} bytes)")
