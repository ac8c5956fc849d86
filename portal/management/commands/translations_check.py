"""`manage.py translations_check`: fails when a template's text is not marked for translation (outside
the templates still pending), or a catalogue misses a message of the code, leaves one untranslated or
fuzzy, or keeps one the code no longer has. Run in CI; needs GNU gettext for the extraction."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import to_locale

from portal.platform.translations import catalogue_problems, pending_templates, template_problems


class Command(BaseCommand):
    help = "Checks that every template string is marked and every catalogue is complete."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = template_problems()
        languages = [to_locale(code) for code in settings.KNOWN_LANGUAGES if code != settings.LANGUAGE_CODE]
        problems += [str(problem) for problem in catalogue_problems(languages)]
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} translation problem(s): mark the strings, then "
                               "`make messages` and translate what it adds.")
        pending = pending_templates()
        self.stdout.write(f"translations complete outside {len(pending)} pending template(s)"
                          if pending else "translations complete")
