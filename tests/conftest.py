"""Shared fixtures. Everything runs on real engines: PostgreSQL, Redis, Celery worker processes.

Without DATABASE_URL/REDIS_URL the settings start embedded engines (bakery.engines) for this
pytest process and stop them when it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client
from rest_framework.test import APIClient

from bakery.client import CSRF_COOKIE, ME_PATH, ORDERS_PATH, order_body, order_headers
from bakery.demo import WEB_POOL_TARGET
from bakery.engines import free_port
from tests.factories import CakeFactory
from tests.processes import ROOT, CeleryWorkerProcess, GunicornProcess

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(autouse=True)
def _customers_made_freely(settings):
    """Every request of the suite comes from loopback: one address stands for a whole room of phones,
    each of which would have an address of its own. So the bound on new customers per address is off,
    here and in the servers and workers the tests start (worker_environment); the tests of that bound
    turn it on (tests/bakery/test_customer_bound.py)."""
    settings.CUSTOMER_CREATION_RATE = "off"


@pytest.fixture(scope="session", autouse=True)
def _pools_closed_before_the_test_database_is_dropped(django_db_setup):
    """Each alias keeps a pool of open connections (settings.DATABASE_POOL_SIZE); the test database
    can only be dropped once they are closed."""
    yield
    for alias in connections:
        connections[alias].close()
        if connections[alias].pool is not None:
            connections[alias].close_pool()


@pytest.fixture
def cake(db):
    return CakeFactory(slug="strawberry-shortcake", name="Strawberry Shortcake", price="24.00")


@pytest.fixture
def other_cake(db):
    return CakeFactory(slug="lemon-drizzle", name="Lemon Drizzle", price="16.50")


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


@pytest.fixture
def customer_client(db):
    client = BakeryClient()
    client.start()
    return client


@pytest.fixture
def staff_password() -> str:
    """The facilitator's password in this test, new every time."""
    return uuid.uuid4().hex


@pytest.fixture
def staff_client(db, staff_password):
    """The facilitator, logged in, with CSRF checked as a browser has it (the csrftoken cookie is set)."""
    user = get_user_model().objects.create_user("facilitator", password=staff_password, is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/workshop/").status_code == 200  # also sets the csrftoken cookie
    return client


@pytest.fixture
def new_key():
    return uuid.uuid4


def worker_environment() -> dict:
    """The environment a child process needs to reach this test run's database and broker."""
    database = settings.DATABASES["default"]
    host = database["HOST"]
    host_part = host.replace("/", "%2F") if host.startswith("/") else f"{host}:{database['PORT'] or 5432}"
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{database['USER'] or 'postgres'}@{host_part}/{connection.settings_dict['NAME']}"
    env["REDIS_URL"] = settings.REDIS_URL
    env["DJANGO_SETTINGS_MODULE"] = "bakery.settings"
    env["EMAIL_BACKEND"] = "django.core.mail.backends.console.EmailBackend"
    env["CUSTOMER_CREATION_RATE"] = settings.CUSTOMER_CREATION_RATE
    return env


class CeleryWorker(CeleryWorkerProcess):
    """A real `celery worker` process on this test run's database and broker."""

    def __init__(self, name: str = "test", extra_env: dict | None = None, concurrency: int = 2,
                 with_beat: bool = False):
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        super().__init__(self.name, env={**worker_environment(), **(extra_env or {})},
                         log_path=ARTIFACTS / f"worker-{self.name}.log", concurrency=concurrency,
                         beat_schedule=ARTIFACTS / f"beat-{self.name}" if with_beat else None)


@pytest.fixture
def celery_worker(transactional_db):
    """One real worker process for the test; the broker's queues are emptied first."""
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = CeleryWorker().start()
    yield worker
    worker.stop()


class BakeryServer(GunicornProcess):
    """The real web tier as `make demo` runs it (ASGI: gunicorn with the bakery's uvicorn worker, bakery.asgi),
    with several worker processes on a free port, on the test database.

    Each worker process has its own database connections, so requests racing here race in
    PostgreSQL exactly as they do in production. Settings come from ``extra_env``.
    """

    def __init__(self, extra_env: dict | None = None, workers: int = 3, host: str = "127.0.0.1"):
        port = free_port(host)
        # Its processes' duration histograms, summed by its /metrics (prometheus-client multiprocess mode).
        self.metrics_dir = Path(tempfile.mkdtemp(prefix=f"bakery-metrics-{port}-"))
        # The pool `make demo` gives each web process when PostgreSQL has room for it (bakery.connections).
        super().__init__(env={**worker_environment(), "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
                              "DATABASE_POOL_SIZE": str(WEB_POOL_TARGET), **(extra_env or {})},
                         log_path=ARTIFACTS / f"gunicorn-{port}.log", host=host, port=port, workers=workers,
                         asgi=True)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


@pytest.fixture
def bakery_server(transactional_db):
    """A gunicorn bakery on the test database; use BakeryServer directly for other settings."""
    server = BakeryServer().start()
    yield server
    server.stop()


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
