"""Fixtures for the fulfilment pipeline: real workers, a real beat, a Redis a test may stop, and
the emails a worker really sent (Django's file-based backend, since the worker is another process).
What they start is in tests/servers.py and tests/mail.py."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests.mail import Mailbox
from tests.servers import CeleryBeat, CeleryWorker, RedisServer, point_celery_at


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


@pytest.fixture
def own_redis(tmp_path):
    """A broker for this test alone; this process's Celery app points at it while the test runs."""
    server = RedisServer(tmp_path).start()
    point_celery_at(server.url)
    yield server
    point_celery_at(settings.CELERY_BROKER_URL)
    server.stop()


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
