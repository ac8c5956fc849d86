from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    label = "portal"
    verbose_name = "Steward portal"

    def ready(self) -> None:
        from portal.platform import workers  # noqa: F401  (worker start-up: device log, heartbeat)
        from portal.web import openapi  # noqa: F401  (registers the schema extensions)
