"""The Celery app, configured from Django settings (CELERY_* names), as in Celery's Django guide.

``celery -A bakery worker|beat`` is an entry point: the engines are started when the app is first
configured, just before it reads Django's settings (a process that imported the settings through
another entry point has them already, so this joins them).
"""

import os
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")

app = Celery("bakery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def start_engines(sender, **kwargs):
    engines.start()


_relay_stop = threading.Event()


@worker_ready.connect
def start_outbox_relay(sender, **kwargs):
    """Every worker relays the outbox the moment an order commits (orders/outbox.py): a thread of
    its main process, started once the pool's children are forked so none inherits its connections."""
    from orders.outbox import relay_on_notify  # this module loads before Django's apps are ready

    threading.Thread(target=relay_on_notify, args=(_relay_stop,), name="outbox-relay", daemon=True).start()


@worker_shutdown.connect
def stop_outbox_relay(sender, **kwargs):
    _relay_stop.set()


@app.task(name="bakery.ping")
def ping(value):
    """Echo a value: the smallest proof that a worker is alive and reachable through the broker."""
    return {"pong": value, "worker_pid": os.getpid()}
