"""A Redis cache that fails soft: when Redis is down, a read is a miss and a write does nothing.

The bakery takes orders without Redis (the outbox keeps the back-office work in PostgreSQL until
the broker is back), so nothing that serves a request may turn a dead cache into a 500. Django's
own RedisCache raises ``redis.ConnectionError`` on every call, after waiting for the socket; this
one answers at once:

* short socket timeouts, so a Redis that hangs costs at most ``SOCKET_TIMEOUT`` once;
* after a failure it does not try again for ``RETRY_AFTER`` seconds, so an outage costs nothing
  per call, and a restarted Redis is used again within a second;
* one warning per ``WARN_EVERY`` seconds per process, not one per request.

Django makes a cache object per thread and, under ASGI, per request (``caches`` is context-local),
and its own RedisCache gives each object a connection pool of its own: every request opened a new
connection to Redis (with redis-py's handshake and a look-up of its own version in the installed
packages), and an outage seen by one request was news to the next. Here every object for the same
Redis in a process shares one :class:`Link`: one client with its pool, and one record of the outage.

Anything built on the default cache (DRF throttling, cached pages) therefore degrades to "no
cache" during an outage: a throttle lets requests through rather than refusing them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

SOCKET_CONNECT_TIMEOUT = 0.25
SOCKET_TIMEOUT = 0.5
RETRY_AFTER = 1.0
WARN_EVERY = 30.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class Link:
    """One Redis as this process sees it: the client (its connection pool is thread-safe) and when
    it was last found down."""

    def __init__(self, client):
        self.client = client
        self.down_until = 0.0
        self.warned_at = -WARN_EVERY
        self.lock = threading.Lock()


_links: dict[tuple, Link] = {}
_links_lock = threading.Lock()


def _fail_soft(fallback):
    """Run the cache operation; when Redis cannot be reached return ``fallback(*args, **kwargs)``."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            if self._link.down_until > time.monotonic():
                return fallback(*args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as error:
                self._went_down(method.__name__, error)
                return fallback(*args, **kwargs)

        return wrapper

    return decorate


def _miss(*args, **kwargs):
    return None


def _default(key, default=None, version=None):
    return default


def _empty(*args, **kwargs):
    return {}


def _false(*args, **kwargs):
    return False


def _nothing_stored(data, *args, **kwargs):
    return list(data)  # set_many's answer: the keys that were not stored


def _no_counter(key, *args, **kwargs):
    raise ValueError(f"Key '{key}' not found (the cache is unreachable)")


class FailSoftRedisCache(RedisCache):
    # Set by RedisCache.__init__ (Django's stubs do not declare them).
    _servers: list[str]
    _options: dict[str, Any]
    _class: type

    def __init__(self, server, params):
        options = dict(params.get("OPTIONS") or {})
        options.setdefault("socket_connect_timeout", SOCKET_CONNECT_TIMEOUT)
        options.setdefault("socket_timeout", SOCKET_TIMEOUT)
        super().__init__(server, {**params, "OPTIONS": options})
        self._link_key = (tuple(self._servers), repr(sorted(options.items())))

    @cached_property
    def _link(self) -> Link:
        with _links_lock:
            link = _links.get(self._link_key)
            if link is None:
                link = _links[self._link_key] = Link(self._class(self._servers, **self._options))
            return link

    @property
    def _cache(self):
        return self._link.client

    def _went_down(self, operation: str, error: BaseException) -> None:
        link, now = self._link, time.monotonic()
        with link.lock:
            link.down_until = now + RETRY_AFTER
            warn = now - link.warned_at >= WARN_EVERY
            if warn:
                link.warned_at = now
        if warn:
            logger.warning("cache: Redis unreachable (%s during %s); serving without the cache", error, operation)

    add = _fail_soft(_false)(RedisCache.add)
    get = _fail_soft(_default)(RedisCache.get)
    set = _fail_soft(_miss)(RedisCache.set)
    touch = _fail_soft(_false)(RedisCache.touch)
    delete = _fail_soft(_false)(RedisCache.delete)
    get_many = _fail_soft(_empty)(RedisCache.get_many)
    has_key = _fail_soft(_false)(RedisCache.has_key)
    incr = _fail_soft(_no_counter)(RedisCache.incr)
    set_many = _fail_soft(_nothing_stored)(RedisCache.set_many)
    delete_many = _fail_soft(_miss)(RedisCache.delete_many)
    clear = _fail_soft(_false)(RedisCache.clear)
