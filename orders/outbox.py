"""The transactional outbox: Celery work is written with the change that needs it, then relayed.

``enqueue`` must be called inside the transaction that makes the change. After the commit it
tries to publish at once (the fast path); if Redis is down the message simply stays pending,
and the beat task ``payments.relay_outbox`` publishes it once the broker is back.
Work leaves the order core here by task name only: ``orders`` knows no task, only its name.

The fast path runs in the request that placed the order, so it must cost nothing when Redis is
down: it gives up after one short connection attempt, and after a failure this process skips
it for ``FAST_PATH_PAUSE_SECONDS`` (the messages wait for beat's relay, every 2 s, instead).
"""

from __future__ import annotations

import base64
import json
import logging
import time

from celery import current_app
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders.models import OutboxMessage

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 0.5
FAST_PATH_PAUSE_SECONDS = 2.0
_broker_down_until = 0.0


def enqueue(task: str, *args) -> OutboxMessage:
    message = OutboxMessage.objects.create(task=task, args=list(args))
    # robust: a failed fast path must not turn a committed order into an error; beat relays it later.
    transaction.on_commit(lambda: _fast_path(message.pk), robust=True)
    return message


def _fast_path(message_id: int) -> None:
    if time.monotonic() >= _broker_down_until:
        relay(ids=[message_id])


def relay(*, ids: list[int] | None = None, limit: int = 200) -> int:
    """Publish pending messages; return how many went out. Safe to run from many processes."""
    global _broker_down_until
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
            # A pooled broker connection (a new TCP connection per order cost ~8 ms of a ~27 ms
            # order request) that gives up at once when Redis is down: the order request that
            # triggered this relay must not wait for the broker (kombu's default retries for
            # seconds). Results are ignored, so publishing never touches the result backend either.
            with app.pool.acquire(block=True) as broker:
                broker.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_SECONDS)
                for message in batch:
                    app.send_task(message.task, args=message.args, retry=False, ignore_result=True,
                                  connection=broker)
                    message.dispatched_at = timezone.now()
                    message.attempts += 1
                    message.save(update_fields=["dispatched_at", "attempts"])
                    sent += 1
        except Exception as error:  # broker down: the rest stays pending for the next relay
            _broker_down_until = time.monotonic() + FAST_PATH_PAUSE_SECONDS
            unsent = [message for message in batch if message.dispatched_at is None]
            OutboxMessage.objects.filter(pk__in=[message.pk for message in unsent]).update(
                attempts=F("attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:300]
            )
            logger.warning("outbox: broker unavailable, %d message(s) stay pending (%s)", len(unsent), error)
    return sent


def queued(tasks) -> set[tuple[str, int]] | None:
    """(task, first argument) of every message still waiting in the broker's queue for ``tasks``,
    or None when the broker cannot be asked. Messages a worker has taken are not included."""
    try:
        with current_app.connection_for_read() as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_SECONDS)
            channel = broker.default_channel
            queue = current_app.conf.task_default_queue
            raw = []
            for priority in channel.priority_steps:  # kombu's Redis queue is one list per priority
                raw += channel.client.lrange(channel._q_for_pri(queue, priority), 0, -1)
    except Exception as error:  # the broker is down: nobody can say what waits in it
        logger.info("outbox: cannot read the broker's queue (%s)", error)
        return None
    waiting = set()
    for item in raw:
        message = json.loads(item)
        task = (message.get("headers") or {}).get("task")
        if task in tasks:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))  # Celery's message protocol 2
            if args:
                waiting.add((task, args[0]))
    return waiting
