"""The Celery app, configured from Django settings (CELERY_* names), as in Celery's Django guide."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")

app = Celery("bakery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="bakery.ping")
def ping(value):
    """Echo a value: the smallest proof that a worker is alive and reachable through the broker."""
    return {"pong": value, "worker_pid": os.getpid()}
