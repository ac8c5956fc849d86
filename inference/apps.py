from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    label = "inference"
    verbose_name = "Models and serving"

    def ready(self) -> None:
        from inference import signals  # noqa: F401  (worker start-up: device log, heartbeat)
