from celery import shared_task

from orders.keys import purge_expired_keys


@shared_task(name="orders.purge_expired_keys")
def purge_expired_keys_task() -> int:
    """Beat runs this every 10 minutes: keys older than IDEMPOTENCY_KEY_TTL count as new afterwards."""
    return purge_expired_keys()
