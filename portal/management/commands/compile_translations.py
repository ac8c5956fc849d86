"""`manage.py compile_translations`: the catalogues under locale/ compiled to .mo with polib (no GNU
gettext needed), only where a .po changed since its .mo was written."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from portal.platform.translations import compile_catalogues


class Command(BaseCommand):
    help = "Compiles the translation catalogues (locale/*/LC_MESSAGES/*.po) to .mo files."

    def handle(self, *args: Any, **options: Any) -> None:
        for path in compile_catalogues():
            self.stdout.write(f"compiled {path.relative_to(path.parents[3])}")
