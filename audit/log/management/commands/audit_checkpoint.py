from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.log.services import checkpoint_create


class Command(BaseCommand):
    help = "Signs a checkpoint of the audit log now (the worker also does it periodically)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = checkpoint_create(force=True)
        assert checkpoint is not None
        self.stdout.write(f"checkpoint: size {checkpoint.tree_size}, root {checkpoint.root_hash}")
