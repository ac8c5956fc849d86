import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("steward")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _prepare_embedded_broker() -> None:
    """The filesystem broker of the embedded default needs its folders before anyone connects."""
    from django.conf import settings

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        if key in options:
            Path(str(options[key])).mkdir(parents=True, exist_ok=True)


_prepare_embedded_broker()
