import os

from celery import Celery

from portal.broker import register as register_embedded_broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

register_embedded_broker()
app = Celery("steward")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
