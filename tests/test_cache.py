"""The default cache fails soft: with its Redis gone a read is a miss and a write does nothing, and
it is used again once Redis is back (a throttle or a cached page never turns into a 500)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from bakery import cache as cache_module
from bakery.cache import RETRY_AFTER, FailSoftRedisCache
from tests.servers import RedisServer


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_a_dead_redis_is_a_miss_and_a_write_does_nothing_then_it_is_used_again(redis_server):
    cache = FailSoftRedisCache(redis_server.url, {})
    cache.set("cake", "strawberry")
    assert cache.get("cake") == "strawberry"

    redis_server.stop()
    assert cache.get("cake") is None
    assert cache.get("cake", "default") == "default"
    cache.set("cake", "lemon")  # no error
    assert cache.add("new", 1) is False
    assert cache.get_many(["cake", "new"]) == {}
    assert cache.delete("cake") is False
    with pytest.raises(ValueError):
        cache.incr("visits")  # like a missing key, which throttles and counters already handle
    assert cache.get_or_set("cake", "fresh") == "fresh"

    redis_server.start()
    time.sleep(RETRY_AFTER + 0.1)
    assert cache.get("cake") == "strawberry"  # the restarted Redis kept its data (append-only file)
    cache.set("cake", "lemon")
    assert cache.get("cake") == "lemon"


def test_every_cache_object_in_a_process_shares_one_connection_and_one_outage(redis_server, monkeypatch):
    """Django makes a cache object per thread and, under ASGI, per request. Each one opening its own
    connection to Redis cost every request a connect and redis-py's handshake, and each one learning
    of an outage afresh cost every request a failed attempt."""
    monkeypatch.setattr(cache_module, "RETRY_AFTER", 60.0)  # longer than a restart of Redis takes
    onlooker = redis.Redis.from_url(redis_server.url)
    received_before = onlooker.info("stats")["total_connections_received"]
    FailSoftRedisCache(redis_server.url, {}).set("cake", "strawberry")
    for _ in range(20):  # one request after another, each with a cache object of its own
        assert FailSoftRedisCache(redis_server.url, {}).get("cake") == "strawberry"
    with ThreadPoolExecutor(4) as threads:  # and four at a time
        answers = threads.map(lambda _: FailSoftRedisCache(redis_server.url, {}).get("cake"), range(20))
        assert set(answers) == {"strawberry"}
    assert onlooker.info("stats")["total_connections_received"] - received_before <= 4
    onlooker.close()

    seen_by_one = FailSoftRedisCache(redis_server.url, {})
    redis_server.stop()
    assert seen_by_one.get("cake") is None  # finds Redis gone, and leaves it alone for RETRY_AFTER
    redis_server.start()
    # Another object, as the next request makes, knows: it does not try Redis until RETRY_AFTER is over.
    assert FailSoftRedisCache(redis_server.url, {}).get("cake", "not tried") == "not tried"
