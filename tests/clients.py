"""Customers of the bakery for the tests: one in Django's test client, and a crowd on real connections."""

from __future__ import annotations

import threading
import time

import httpx
from rest_framework.test import APIClient

from bakery.client import CSRF_COOKIE, ME_PATH, ORDERS_PATH, order_body, order_headers


class BakeryClient(APIClient):
    """A customer with a cookie jar, like a browser: it has a session and sends X-CSRFToken.

    It is Django's in-process test client, speaking the protocol of bakery.client.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, enforce_csrf_checks=True, **kwargs)

    def start(self) -> dict:
        """Become a customer the way a script does: GET /api/me/ for the csrftoken cookie, then a
        first write (setting the idempotency switch) makes the customer and its session."""
        self.get(ME_PATH)
        me = self.patch(ME_PATH, {"idempotency": True}, format="json",
                        headers={"X-CSRFToken": self.cookies["csrftoken"].value}).json()
        self.customer_id = me["customer"]
        return me

    def order(self, key=None, *, body=None, **extra):
        """One order attempt, with the same headers bakery.client's OrderClient sends over HTTP."""
        headers = order_headers(self.cookies[CSRF_COOKIE].value, key, extra.pop("headers", {}))
        return self.post(ORDERS_PATH, body if body is not None else order_body(), format="json", headers=headers,
                         **extra)


def fire_at_once(count: int, send) -> list[tuple[float, httpx.Response]]:
    """``count`` threads call ``send(client)`` at the same instant, each on its own connection; returns
    (seconds from the start, response) in the order the answers arrived."""
    barrier, lock, answers = threading.Barrier(count), threading.Lock(), []

    def one():
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            started = time.monotonic()
            response = send(client)
            with lock:
                answers.append((time.monotonic() - started, response))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers
