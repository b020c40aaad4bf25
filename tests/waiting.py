"""Waiting in a test for something another process does."""

from __future__ import annotations

import time

import pytest

WAIT_SECONDS = 60


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
