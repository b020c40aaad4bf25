"""The real stack for the bench: embedded PostgreSQL and Redis, gunicorn per implementation, a worker.

Everything is started from the project's own code (bakery.engines, bakery.wsgi, the Celery app)
into a database of its own (``bench``, recreated on every run) on the engines that
``BAKERY_DATA_DIR`` points at, and stopped again when the bench ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
BENCH_DATABASE = "bench"

# One gunicorn configuration for ours and every peer: several processes, a few threads each.
GUNICORN_WORKERS = 4
GUNICORN_THREADS = 4

IMPLEMENTATIONS = {
    # name -> (settings module, order URL)
    "freeds-bakery": ("bakery.settings", "/api/orders/"),
    "drf-idempotency": ("tests.bench.peers.settings_drf_idempotency", "/bench/orders/"),
    "drf-idempotencykey": ("tests.bench.peers.settings_drf_idempotencykey", "/bench/orders/"),
    "django-idempotency-key": ("tests.bench.peers.settings_django_idempotency_key", "/bench/orders/"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_engines() -> dict:
    """Start (or join) the embedded engines and recreate the bench database; return the child env."""
    import psycopg

    from bakery import engines

    database_url = engines.database_url()
    redis_url = engines.redis_url()
    parts = urlsplit(database_url)
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    bench_url = urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = dict(os.environ)
    env.update(DATABASE_URL=bench_url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING",
               EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    os.environ.update(DATABASE_URL=bench_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bakery.settings")
    return env


def stop_engines() -> None:
    from bakery import engines

    if not os.environ.get("BENCH_KEEP_ENGINES"):
        engines.stop_embedded_redis()
    engines.stop_embedded_postgres()


def migrate(env: dict) -> None:
    """Our schema and demo data in-process, then each peer's own tables from its settings."""
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_initial_data", verbosity=0)
    for settings_module, _url in IMPLEMENTATIONS.values():
        if settings_module != "bakery.settings":
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                           env={**env, "DJANGO_SETTINGS_MODULE": settings_module})


class Server:
    """One gunicorn serving one implementation on a free loopback port."""

    def __init__(self, name: str, env: dict, log_dir: Path, slow_seconds: float):
        self.name = name
        self.settings_module, self.order_url = IMPLEMENTATIONS[name]
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "DJANGO_SETTINGS_MODULE": self.settings_module,
                    "TUNNEL_SLOW_SECONDS": str(slow_seconds)}
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "bakery.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(GUNICORN_WORKERS), "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
             "--timeout", "120", "--graceful-timeout", "5", "--preload", "--keep-alive", "300",
             # gunicorn 27's control socket has one default path per user: several gunicorns on one
             # machine (the four here, a demo, another test run) would take it from each other.
             "--no-control-socket"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn for {self.name} exited; see {self.log_path}")
            try:
                if httpx.get(self.base_url + "/api/me/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn for {self.name} did not answer in {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.process)
        if getattr(self, "log", None):
            self.log.close()


class Worker:
    """A real Celery worker (the same command as `make demo`'s) for the back-office figures."""

    def __init__(self, env: dict, log_dir: Path, concurrency: int = 2):
        self.env = {**env, "DJANGO_SETTINGS_MODULE": "bakery.settings"}
        self.hostname = f"bench-{os.getpid()}"
        self.log_path = log_dir / "celery-worker.log"
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        from bakery.celery import app

        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bakery", "worker", "--loglevel", "WARNING",
             "--concurrency", str(self.concurrency), "--hostname", f"{self.hostname}@%h",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker died at start; see {self.log_path}")
            if app.control.ping(timeout=0.5, destination=[f"{self.hostname}@{os.uname().nodename}"]):
                return self
        raise RuntimeError(f"celery worker did not answer within 60 s; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.process, grace=20)
        if getattr(self, "log", None):
            self.log.close()


def stop_process(process: subprocess.Popen | None, grace: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
