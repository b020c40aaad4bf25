"""The default cache fails soft: with its Redis gone a read is a miss and a write does nothing, and
it is used again once Redis is back (a throttle or a cached page never turns into a 500)."""

from __future__ import annotations

import time

import pytest

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
