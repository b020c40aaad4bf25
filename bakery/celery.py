"""The Celery app, configured from Django settings (CELERY_* names), as in Celery's Django guide.

``celery -A bakery worker|beat`` is an entry point: the engines are started when the app is first
configured, just before it reads Django's settings (a process that imported the settings through
another entry point has them already, so this joins them).
"""

import os
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from kombu.transport import redis as kombu_redis

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")

app = Celery("bakery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


_restore_unacked = kombu_redis.QoS.restore_unacked


def restore_unacked_while_connected(qos, client=None):
    """kombu's Redis channel, when it closes after the broker connection was lost, puts its
    unacknowledged messages back through the connection's parameters. If that connection was
    already closed and cleared (Redis killed while messages were in hand), kombu raises
    AttributeError, which the worker takes as unrecoverable: it exits, and a demo with it. Nothing
    is lost by skipping the restore then: the messages stay in Redis's unacked set and come back
    after the visibility timeout, and the completer resumes any order left behind."""
    if client is None and qos.channel.connection.client is None:
        return None
    return _restore_unacked(qos, client)


kombu_redis.QoS.restore_unacked = restore_unacked_while_connected


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
