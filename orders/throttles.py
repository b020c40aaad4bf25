"""Order creation is throttled per customer, so one learner's script cannot crowd out the room.

Two DRF throttles on ``POST /api/orders/``, DRF's burst-and-sustained pattern: over
``ORDER_BURST_RATE`` (``10/sec``: a script firing a hundred at once) or ``ORDER_THROTTLE_RATE``
(``60/min``) the answer is ``429`` problem+json with ``Retry-After``. They count in the default
cache (Redis). A person, and the simulator's retries with backoff, stay far below both.

It counts with one atomic ``INCR`` per request in a fixed window rather than DRF's
SimpleRateThrottle history list: that list is read, changed and written back, so a burst of
concurrent requests from one customer (exactly what a flood is) overwrites its own entries and
is barely counted. Every attempt counts, refused ones too, so a script that keeps hammering stays
refused until the window ends (``Retry-After``); a person who waits is let in at once. When the
cache cannot count (no Redis, an evicted key) the order goes through: the throttle protects the
room, it never stands between a customer and their cake.
"""

from __future__ import annotations

from typing import cast

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from orders.customers import ActingAPIRequest

OFF = {"", "off", "none"}


class OrderRateThrottle(SimpleRateThrottle):
    scope = "orders"
    rate_setting = "ORDER_THROTTLE_RATE"
    # Set by SimpleRateThrottle.__init__ from the rate (rest_framework-stubs leave them out); read only with a rate.
    num_requests: int
    duration: int

    def get_rate(self) -> str | None:
        rate = (getattr(settings, self.rate_setting) or "").strip().lower()
        return None if rate in OFF else rate

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.method != "POST":
            return None
        # Counted by the cookie's customer, saved or not yet (see Acting.counted_id); a request without
        # one by its address. A script that drops its cookies to start afresh every time makes a new
        # customer each time, and an address makes at most CUSTOMER_CREATION_RATE of them.
        customer_id = cast(ActingAPIRequest, request).acting.counted_id  # from the cookie: no query
        ident = f"customer-{customer_id}" if customer_id else f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        counter = f"{key}-{window}"
        try:
            self.cache.add(counter, 0, timeout=self.duration + 1)
            count = self.cache.incr(counter)
        except ValueError:  # the counter is not there: the cache did not keep it, so nothing counts
            return True
        return not isinstance(count, int) or count <= self.num_requests

    def wait(self) -> float:
        return max(1.0, self.window_ends - self.now)


class OrderBurstThrottle(OrderRateThrottle):
    scope = "orders-burst"
    rate_setting = "ORDER_BURST_RATE"
