"""The order API from the client's side: the one module that speaks it over HTTP.

``manage.py tunnel``, the bench's load generator (tests/bench/load.py) and the tests' client
(tests/clients.py) all use it, so the customer cookie, the CSRF header, the key header and the retry policy
are written once:

* a client is a customer with a cookie jar: ``GET /api/me/`` gives the ``csrftoken`` cookie and the
  ``bakery_customer`` cookie that scopes its keys, the first write makes that scope a customer, and
  every write sends the token in ``X-CSRFToken``;
* one ``Idempotency-Key`` per order intent, the same on every retry;
* retries follow :class:`RetryPolicy`, whose parameters are declared in settings (``CLIENT_RETRY_*``)
  and handed to the browser's phones too, and honour as a minimum the ``Retry-After`` of a ``409`` (the
  key is still being worked on), a ``429`` (too many requests) and a ``503`` (the bakery's database is
  away: nothing was written, so the same key is taken once later).
"""

from __future__ import annotations

import math
import random
import re
import ssl
from dataclasses import dataclass
from functools import cache

import certifi
import httpx

ME_PATH = "/api/me/"
ORDERS_PATH = "/api/orders/"
CSRF_COOKIE, CSRF_HEADER = "csrftoken", "X-CSRFToken"
KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def order_body(cake: str = "strawberry-shortcake", quantity: int = 1, note: str = "") -> dict:
    """An order for one kind of cake, as the simulator page sends it."""
    return {"items": [{"cake": cake, "quantity": quantity}], "note": note}


def order_headers(csrf_token: str | None, key=None, extra: dict | None = None) -> dict:
    """The headers of an order request: the CSRF token, the key (when there is one) and ``extra``."""
    headers = {CSRF_HEADER: csrf_token or ""}
    if key is not None:
        headers[KEY_HEADER] = str(key)
    headers.update(extra or {})
    return headers


def is_replay(headers) -> bool:
    return headers.get(REPLAYED_HEADER) == "true"


# The answers that say when to come back, and after which the same key is sent again: the key is still
# being worked on (409), too many orders or tunnel holds (429), the database is away and nothing was
# written (503).
RETRY_AFTER_STATUSES = frozenset({409, 429, 503})
# Whole seconds, as the bakery sends them (decimals are understood too); [0-9], not \d, which would
# take other scripts' digits that the browser's side does not.
_SECONDS = re.compile(r"[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds, or None: a date, a negative number or anything else is not
    understood, and then the backoff alone decides."""
    match = _SECONDS.fullmatch(value or "")
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy of the bakery's clients; the phones in the browser compute the same
    (static/js/retry.js, which says why this one) and tests/test_retry_policy.py holds both to one
    table. Retry ``n`` waits between ``max(Retry-After, ceiling / 2)`` and that plus ``ceiling / 2``,
    where the ceiling is ``min(cap, base * 2^(n-1))``: exponential backoff with "equal jitter", its
    floor raised to the server's Retry-After, so the wait is never shorter than the server asked and
    a room never retries in step."""

    base: float
    cap: float
    max_attempts: int

    @classmethod
    def from_settings(cls, **overrides) -> RetryPolicy:
        from django.conf import settings  # read when asked: the client runs outside Django too

        policy = {"base": settings.CLIENT_RETRY_BASE_SECONDS, "cap": settings.CLIENT_RETRY_CAP_SECONDS,
                  "max_attempts": settings.CLIENT_RETRY_MAX_ATTEMPTS}
        return cls(**{**policy, **{name: value for name, value in overrides.items() if value is not None}})

    def wait(self, retry: int, status: int | None = None, retry_after: str | None = None,
             *, random_value: float | None = None) -> float:
        """Seconds before retry ``retry`` (1 for the first), after an answer with ``status`` (None: no
        answer) and the Retry-After header ``retry_after``; ``random_value`` in [0, 1) places the wait
        in its window (a fresh random number when None)."""
        ceiling = min(self.cap, self.base * 2 ** (retry - 1))
        asked = retry_after_seconds(retry_after) if status in RETRY_AFTER_STATUSES else None
        spread = random.random() if random_value is None else random_value
        return max(asked or 0.0, ceiling / 2) + spread * ceiling / 2


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation): p99 of 40 values is the slowest but none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of this process: making one costs about 20 ms of CPU, which
    a room of 200 clients would otherwise spend, one after another, before its first order."""
    return ssl.create_default_context(cafile=certifi.where())


class OrderClient:
    """One customer of a running bakery over real HTTP (httpx, async), with its own cookie jar."""

    def __init__(self, base_url: str, *, order_path: str = ORDERS_PATH, timeout: float = 30,
                 connections: int | None = None, local_address: str | None = None):
        self.order_path = order_path
        self.customer_id = self.label = ""
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections) \
            if connections else httpx.Limits()
        transport = httpx.AsyncHTTPTransport(local_address=local_address, limits=limits, verify=tls_context()) \
            if local_address else None
        self.http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout), limits=limits,
                                      headers={"Accept": "application/json"}, verify=tls_context(),
                                      transport=transport)

    async def start(self, *, idempotency: bool | None = None, login_path: str | None = None,
                    as_visitor: bool = False) -> dict:
        """Become a customer: ``GET /api/me/`` gives the csrftoken cookie and the customer's scope
        (reading creates nothing),
        then the first write, setting the idempotency switch (on unless asked otherwise), makes this
        client a customer. Logs in first when ``login_path`` is given.

        ``as_visitor=True`` is a phone's way in: the switch is written only when it must change,
        so a visitor whose switch is already right stays a visitor until its first order makes it a
        customer, one request sooner (a room of 200 starts in half the requests)."""
        me = (await self.http.get(ME_PATH)).raise_for_status().json()
        if login_path:
            (await self.http.post(login_path, headers=order_headers(self.csrf_token))).raise_for_status()
        wanted = idempotency is not False
        if not as_visitor or me["idempotency"] != wanted:
            switched = await self.http.patch(ME_PATH, json={"idempotency": wanted},
                                             headers=order_headers(self.csrf_token))
            me = switched.raise_for_status().json()
        self.customer_id, self.label = me["customer"], me["label"]
        return me

    @property
    def csrf_token(self) -> str | None:
        return self.http.cookies.get(CSRF_COOKIE)

    async def order(self, key, body: dict | None = None, extra_headers: dict | None = None) -> httpx.Response:
        """POST one attempt of an order intent; ``key`` None sends no Idempotency-Key at all."""
        headers = order_headers(self.csrf_token, key, extra_headers)
        return await self.http.post(self.order_path, json=body or order_body(), headers=headers)

    async def orders(self) -> list[dict]:
        return (await self.http.get(ORDERS_PATH)).raise_for_status().json()

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> OrderClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
