"""The transactional outbox: Celery work is written with the change that needs it, then relayed.

``enqueue`` must be called inside the transaction that makes the change. After the commit it
tries to publish at once (the fast path); if Redis is down the message simply stays pending,
and the beat task ``payments.relay_outbox`` publishes it once the broker is back.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from payments.models import OutboxMessage

logger = logging.getLogger(__name__)


def enqueue(task: str, *args) -> OutboxMessage:
    message = OutboxMessage.objects.create(task=task, args=list(args))
    transaction.on_commit(lambda: relay(ids=[message.pk]))
    return message


def relay(*, ids: list[int] | None = None, limit: int = 200) -> int:
    """Publish pending messages; return how many went out. Safe to run from many processes."""
    from bakery.celery import app

    sent = 0
    with transaction.atomic():
        pending = OutboxMessage.objects.filter(dispatched_at__isnull=True)
        if ids is not None:
            pending = pending.filter(pk__in=ids)
        # SKIP LOCKED: two relays never publish the same message at the same moment.
        for message in pending.select_for_update(skip_locked=True).order_by("id")[:limit]:
            try:
                app.send_task(message.task, args=message.args, retry=False)
            except Exception as error:  # broker down: keep it pending for the next relay
                message.attempts += 1
                message.last_error = f"{type(error).__name__}: {error}"[:300]
                message.save(update_fields=["attempts", "last_error"])
                logger.warning("outbox: broker unavailable, %s stays pending (%s)", message, error)
                break
            message.dispatched_at = timezone.now()
            message.attempts += 1
            message.save(update_fields=["dispatched_at", "attempts"])
            sent += 1
    return sent
