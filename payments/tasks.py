"""The public Celery tasks of the fulfilment pipeline. Operators may re-run any of them by name;
every one is safe to deliver any number of times (see payments/services.py for why).

    payments.capture_payment(order_id)    placed -> paid (or payment_failed)
    payments.issue_invoice(order_id)      paid -> invoiced
    payments.send_confirmation(order_id)  invoiced -> notified
    payments.relay_outbox()               publish what the outbox holds (beat, every 2 s)
    payments.complete_stranded()          re-send the next step of stalled orders (beat, every 5 s)

Acknowledgement after the task ran (acks_late), requeue of a task whose worker died
(reject_on_worker_lost) and the visibility timeout are set in bakery/settings.py.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task, shared_task

from orders import outbox
from orders.idempotency import KeyInFlight
from payments import completer, services
from payments.provider import TransientProviderError

# A step whose key is in flight is being run by another delivery right now; it finishes or its
# worker dies (PostgreSQL then releases the key at once), so a few short waits are enough.
IN_FLIGHT_RETRIES = 20


class FulfilmentTask(Task[..., None]):
    """Base of the steps: every retry and every final failure lands on the order's timeline."""

    ignore_result = True  # nobody reads results; the order's status is the result

    def on_retry(self, exc: Exception, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 einfo: ExceptionInfo) -> None:
        services.step_retrying(task=self.name, order_id=_order_id(args, kwargs), error=exc,
                               attempt=self.request.retries + 1)

    def on_failure(self, exc: Exception, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                   einfo: ExceptionInfo) -> None:
        services.step_failed(task=self.name, order_id=_order_id(args, kwargs), error=exc)


def _order_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    return args[0] if args else kwargs.get("order_id")


@contextmanager
def retry_while_key_in_flight(task: Task[..., None]) -> Iterator[None]:
    try:
        yield
    except KeyInFlight as busy:
        raise task.retry(exc=busy, countdown=busy.retry_after, max_retries=IN_FLIGHT_RETRIES) from None


# Celery's own retry options: exponential backoff (1, 2, 4, 8 s, capped at 8) with full jitter,
# at most 4 retries (5 calls to the provider); after that FulfilmentTask.on_failure fails the order.
@shared_task(bind=True, base=FulfilmentTask, name="payments.capture_payment",
             autoretry_for=(TransientProviderError,), retry_backoff=1, retry_backoff_max=8, retry_jitter=True,
             max_retries=4)
def capture_payment(self: FulfilmentTask, order_id: int) -> None:
    """Step 1: take the money with the order's key. A decline is final and is not retried."""
    with retry_while_key_in_flight(self):
        services.payment_capture(order_id=order_id)


@shared_task(bind=True, base=FulfilmentTask, name="payments.issue_invoice")
def issue_invoice(self: FulfilmentTask, order_id: int) -> None:
    """Step 2: the next gap-free invoice number for a paid order."""
    with retry_while_key_in_flight(self):
        services.invoice_issue(order_id=order_id)


# OSError covers smtplib's errors: a mail server that is briefly away is worth retrying.
@shared_task(bind=True, base=FulfilmentTask, name="payments.send_confirmation",
             autoretry_for=(OSError,), retry_backoff=1, retry_backoff_max=8, retry_jitter=True, max_retries=5)
def send_confirmation(self: FulfilmentTask, order_id: int) -> None:
    """Step 3: the one confirmation email."""
    with retry_while_key_in_flight(self):
        services.confirmation_send(order_id=order_id)


@shared_task(name="payments.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    """Beat runs this every 2 s: publish what the outbox holds (e.g. orders made while Redis was down)."""
    return outbox.relay()


@shared_task(name="payments.complete_stranded", ignore_result=True)
def complete_stranded() -> dict[str, list[int]]:
    """Beat runs this every 5 s: resume orders whose checkpoint stalled (payments/completer.py)."""
    run = completer.stranded_complete()
    return {"resumed": run.resumed, "stopped": run.stopped}
