from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from inference.ml.demos import DEMO_MODELS
from inference.services.demo_publishing import demo_model_publish


class Command(BaseCommand):
    help = "Builds the demo models from the shipped data (offline), registers, approves and serves them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", default="demo", help="organisation slug (with demo-owner and demo-reviewer)")
        parser.add_argument("--only", choices=[m.name for m in DEMO_MODELS], default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        for model in DEMO_MODELS:
            if options["only"] and model.name != options["only"]:
                continue
            bar = tqdm(total=1, desc=f"building {model.name}", unit="step", leave=True)

            def progress(done: int, total: int, note: str, bar: Any = bar) -> None:
                bar.total = total
                bar.n = done
                bar.set_postfix_str(note)
                bar.refresh()

            # tqdm.write prints above the bar instead of through it
            demo_model_publish(model, organization_slug=options["org"], progress=progress, log=tqdm.write)
            bar.close()
