"""Waiting in a test for something another process does."""

from __future__ import annotations

import time

import pytest

WAIT_SECONDS = 60


def clear_of_a_window_edge(period: float = 60, margin: float = 15) -> None:
    """The bakery's counters (order throttles, new customers per address) count in fixed windows that
    start afresh at each multiple of ``period`` seconds. A test that counts up to a limit starts when
    the window has at least ``margin`` seconds left, so the count it expects is not cut in two."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)


def wait_for(predicate, *, timeout: float = WAIT_SECONDS, interval: float = 0.2, message: str = ""):
    """Poll until ``predicate()`` is truthy and return its value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)
