"""Shared fixtures. Everything runs on real engines: PostgreSQL, Redis, Celery worker processes.

Without DATABASE_URL/REDIS_URL the settings start embedded engines (bakery.engines) for this
pytest process and stop them when it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import CakeFactory

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def cake(db):
    return CakeFactory(slug="strawberry-shortcake", name="Strawberry Shortcake", price="24.00")


@pytest.fixture
def other_cake(db):
    return CakeFactory(slug="lemon-drizzle", name="Lemon Drizzle", price="16.50")


class BakeryClient(APIClient):
    """A customer with a cookie jar, like a browser: it has a session and sends X-CSRFToken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, enforce_csrf_checks=True, **kwargs)

    def start(self) -> dict:
        me = self.get("/api/me/").json()
        self.customer_id = me["customer"]
        return me

    def order(self, key=None, *, body=None, **extra):
        body = body if body is not None else {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]}
        headers = {"X-CSRFToken": self.cookies["csrftoken"].value}
        if key is not None:
            headers["Idempotency-Key"] = str(key)
        headers.update(extra.pop("headers", {}))
        return self.post("/api/orders/", body, format="json", headers=headers, **extra)


@pytest.fixture
def customer_client(db):
    client = BakeryClient()
    client.start()
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
    return env


def stop_process(process: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it is still there after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class CeleryWorker:
    """A real `celery worker` process on the real broker, started and stopped by a test."""

    def __init__(self, name: str = "test", extra_env: dict | None = None, concurrency: int = 2):
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.env = {**worker_environment(), **(extra_env or {})}
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"worker-{self.name}.log"

    def start(self) -> CeleryWorker:
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bakery", "worker", "--loglevel", "INFO",
             "--concurrency", str(self.concurrency), "--hostname", f"{self.name}@%h", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        from bakery.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker died at start; see {self.log_path}")
            replies = app.control.ping(timeout=0.5, destination=[f"{self.name}@{os.uname().nodename}"])
            if replies:
                return self
        raise RuntimeError(f"worker did not answer a ping within 60 s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the crash a real worker suffers (OOM killer, power cut), no chance to clean up."""
        import signal

        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process, grace=20)
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture
def celery_worker(transactional_db):
    """One real worker process for the test; the broker's queues are emptied first."""
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = CeleryWorker().start()
    yield worker
    worker.stop()


class BakeryServer:
    """The real web tier: gunicorn with several worker processes on a free loopback port.

    Each worker process has its own database connections, so requests racing here race in
    PostgreSQL exactly as they do in production. Settings come from ``extra_env``.
    """

    def __init__(self, extra_env: dict | None = None, workers: int = 3, host: str = "127.0.0.1"):
        import socket

        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port = probe.getsockname()[1]
        self.host = host
        self.workers = workers
        self.env = {**worker_environment(), **(extra_env or {})}
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"gunicorn-{self.port}.log"

    def start(self) -> BakeryServer:
        import httpx

        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "bakery.wsgi", "--bind", f"{self.host}:{self.port}",
             "--workers", str(self.workers), "--worker-class", "gthread", "--threads", "8",
             "--no-control-socket"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn died at start; see {self.log_path}")
            try:
                if httpx.get(self.url + "/api/me/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


@pytest.fixture
def bakery_server(transactional_db):
    """A gunicorn bakery on the test database; use BakeryServer directly for other settings."""
    server = BakeryServer().start()
    yield server
    server.stop()
