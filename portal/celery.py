import os
from typing import Any

from celery import Celery, signals

from portal.platform.broker import register as register_embedded_broker
from portal.platform.broker import register_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

register_embedded_broker()
register_redis()
app = Celery("steward")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(**kwargs: Any) -> None:
    """Before and after each task, as around each web request: a connection past its
    CONN_MAX_AGE, or left unusable by an error, is closed; a healthy one is kept for the next."""
    from django.db import close_old_connections

    close_old_connections()
