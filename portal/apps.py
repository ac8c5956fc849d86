from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    label = "portal"
    verbose_name = "Steward portal"

    def ready(self) -> None:
        from portal import (
            openapi,  # noqa: F401  (registers the schema extensions)
            workers,  # noqa: F401  (worker start-up: device log, heartbeat)
        )
