"""Shared fixtures; the helpers they use are plain modules (tests/servers.py, tests/clients.py) that
tests import too. Everything runs on real engines: PostgreSQL, Redis, Celery worker processes.

Without DATABASE_URL/REDIS_URL the settings start embedded engines (bakery.engines) for this
pytest process and stop them when it exits.
"""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from tests.clients import BakeryClient
from tests.factories import CakeFactory
from tests.servers import BakeryServer, CeleryWorker


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


@pytest.fixture
def celery_worker(transactional_db):
    """One real worker process for the test; the broker's queues are emptied first."""
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = CeleryWorker().start()
    yield worker
    worker.stop()


@pytest.fixture
def bakery_server(transactional_db):
    """A gunicorn bakery on the test database; use BakeryServer directly for other settings."""
    server = BakeryServer().start()
    yield server
    server.stop()
