"""The Celery app, configured from Django settings (CELERY_* names), as in Celery's Django guide.

``celery -A bakery worker|beat`` is an entry point: the engines are started when the app is first
configured, just before it reads Django's settings (a process that imported the settings through
another entry point has them already, so this joins them).
"""

import os

from celery import Celery

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")

app = Celery("bakery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def start_engines(sender, **kwargs):
    engines.start()


@app.task(name="bakery.ping")
def ping(value):
    """Echo a value: the smallest proof that a worker is alive and reachable through the broker."""
    return {"pong": value, "worker_pid": os.getpid()}
