"""The transactional outbox: Celery work is written with the change that needs it, then relayed.

``enqueue`` must be called inside the transaction that makes the change, and that is all the
request does: no broker call and no second transaction on the request path. A trigger on the
outbox table NOTIFYs ``orders_outbox`` (PostgreSQL delivers it when, and only if, the transaction
commits), and :func:`relay_on_notify`, a thread in every Celery worker (bakery/celery.py), publishes
what is pending a moment later. If Redis is down the message simply stays pending; the listener
tries again, and the beat task ``payments.relay_outbox`` publishes it once the broker is back.
Work leaves the order core here by task name only: ``orders`` knows no task, only its name.

A relay gives up on the broker after one short connection attempt, so a Redis that is down costs
the listener half a second per try, and nothing at all to the customer who placed the order.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Container
from typing import TYPE_CHECKING, cast

import psycopg
from celery import current_app
from django.db import close_old_connections, connections, transaction
from django.db.models import F
from django.utils import timezone

from orders.models import OutboxMessage

if TYPE_CHECKING:
    from kombu import Connection
    from kombu.connection import ConnectionPool
    from kombu.transport.redis import Channel as RedisChannel

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 0.5
CHANNEL = "orders_outbox"  # NOTIFYed by the trigger of migration 0005 on every insert
# With nothing heard for this long the listener checks its connection and relays anyway.
LISTEN_IDLE_SECONDS = 5.0
RECONNECT_SECONDS = 1.0


def enqueue(task: str, *args: object) -> OutboxMessage:
    """Write ``task(*args)`` to the outbox in the caller's transaction; it is relayed after the commit."""
    return OutboxMessage.objects.create(task=task, args=list(args))


def relay(*, ids: list[int] | None = None, limit: int = 200) -> int:
    """Publish pending messages; return how many went out. Safe to run from many processes."""
    # The current app is the project's (its Celery module sets it when Django loads it), so the
    # order core sends work by task name without knowing who runs it.
    app = current_app
    sent = 0
    with transaction.atomic():
        pending = OutboxMessage.objects.filter(dispatched_at__isnull=True)
        if ids is not None:
            pending = pending.filter(pk__in=ids)
        # SKIP LOCKED: two relays never publish the same message at the same moment.
        batch = list(pending.select_for_update(skip_locked=True).order_by("id")[:limit])
        if not batch:
            return 0
        try:
            # A pooled broker connection that gives up at once when Redis is down (kombu's default
            # retries for seconds). Results are ignored, so publishing never touches the result
            # backend either.
            # Celery's app.pool is kombu's pool of broker connections; celery-types call it a ProducerPool.
            pool: ConnectionPool = app.pool  # type: ignore[assignment]
            broker: Connection
            with pool.acquire(block=True) as broker:
                _connect_at_once(broker)
                for message in batch:
                    app.send_task(message.task, args=message.args, retry=False, ignore_result=True,
                                  connection=broker)
                    message.dispatched_at = timezone.now()
                    message.attempts += 1
                    sent += 1
        except Exception as error:  # broker down: the rest stays pending for the next relay
            unsent = [message for message in batch if message.dispatched_at is None]
            OutboxMessage.objects.filter(pk__in=[message.pk for message in unsent]).update(
                attempts=F("attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:300]
            )
            logger.warning("outbox: broker unavailable, %d message(s) stay pending (%s)", len(unsent), error)
        published = [message for message in batch if message.dispatched_at is not None]
        if published:
            OutboxMessage.objects.bulk_update(published, ["dispatched_at", "attempts"])
    return sent


def relay_on_notify(stop: threading.Event) -> None:
    """Relay each committed outbox message as soon as PostgreSQL says it is there, until ``stop``.

    LISTENs on a connection of its own (autocommit) and relays what is pending when it starts,
    after every notification (the notifications that arrived meanwhile are folded into one relay)
    and when nothing was heard for LISTEN_IDLE_SECONDS (so a message left pending by a broker
    outage goes out without beat, too). It reconnects after a lost connection (PostgreSQL
    restarted). Several workers may listen at once: :func:`relay` never publishes a message twice.
    """
    while not stop.is_set():
        try:
            with psycopg.connect(**connections["default"].get_connection_params(), autocommit=True) as listener:
                listener.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    _relay_all()
                    if not list(listener.notifies(timeout=LISTEN_IDLE_SECONDS, stop_after=1)):
                        listener.execute("SELECT 1")  # a dead connection raises here rather than going quiet
                    list(listener.notifies(timeout=0))  # fold what arrived meanwhile into the next relay
        except Exception as error:
            logger.warning("outbox: the relay's listener lost its connection (%s); reconnecting", error)
            stop.wait(RECONNECT_SECONDS)
        finally:
            connections["default"].close()


def _relay_all(batch: int = 200) -> None:
    close_old_connections()
    while relay(limit=batch) == batch:
        pass


def _connect_at_once(broker: Connection) -> None:
    """Connect ``broker`` with one short attempt: raises at once when Redis is down."""
    # kombu takes the timeout in seconds, fractions too; kombu-stubs type it as an int.
    broker.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_SECONDS)  # type: ignore[arg-type]


def queued(tasks: Container[str]) -> set[tuple[str, int]] | None:
    """(task, first argument) of every message still waiting in the broker's queue for ``tasks``,
    or None when the broker cannot be asked. Messages a worker has taken are not included."""
    try:
        with current_app.connection_for_read() as broker:
            _connect_at_once(broker)
            channel = cast("RedisChannel", broker.default_channel)  # the broker is Redis (CELERY_BROKER_URL)
            queue = current_app.conf.task_default_queue
            raw: list[bytes] = []
            for priority in channel.priority_steps:  # kombu's Redis queue is one list per priority
                # kombu-stubs leave out the channel's private _q_for_pri, which names each list.
                raw += channel.client.lrange(channel._q_for_pri(queue, priority), 0, -1)  # type: ignore[attr-defined]
    except Exception as error:  # the broker is down: nobody can say what waits in it
        logger.info("outbox: cannot read the broker's queue (%s)", error)
        return None
    waiting: set[tuple[str, int]] = set()
    for item in raw:
        message = json.loads(item)
        task = (message.get("headers") or {}).get("task")
        if isinstance(task, str) and task in tasks:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))  # Celery's message protocol 2
            if args:
                waiting.add((task, args[0]))
    return waiting
