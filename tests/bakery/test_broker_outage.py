"""A worker holding messages when Redis dies must not exit: it reconnects when Redis is back.

kombu closes the broker channel after the connection is lost and puts the unacknowledged messages
back; when that connection was already cleared it used to raise AttributeError, which the worker
takes as unrecoverable (bakery/celery.py). The chaos drill kills Redis under a real worker; this is
the same moment, reached on purpose.
"""

import uuid

import redis
from django.conf import settings
from kombu import Exchange, Queue

from bakery.celery import app


def test_a_channel_closed_after_its_connection_was_cleared_keeps_its_messages():
    queue = Queue(f"outage-{uuid.uuid4().hex}", Exchange("outage", type="direct"), routing_key="outage")
    with app.connection_for_write() as connection:
        channel = connection.channel()
        queue(channel).declare()
        connection.Producer(channel).publish({"order": 1}, exchange=queue.exchange, routing_key="outage",
                                             declare=[queue])
        message = channel.basic_get(queue.name, no_ack=False)
        assert message is not None
        tag = message.delivery_tag
        unacked, unacked_index = channel.unacked_key, channel.unacked_index_key

        connection.transport.client = None  # what a close on another path leaves behind
        channel.close()  # raised AttributeError, and the worker exited

    broker = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert broker.hexists(unacked, tag)  # still held: it comes back after the visibility timeout
    finally:
        broker.hdel(unacked, tag)
        broker.zrem(unacked_index, tag)
        broker.delete(queue.name)
