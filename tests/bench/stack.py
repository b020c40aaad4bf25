"""The real stack for the bench: embedded PostgreSQL and Redis, gunicorn per implementation, a worker.

Everything is started from the project's own code (bakery.engines, bakery.wsgi, the Celery app)
into a database of its own (``bench``, recreated on every run) on the engines that
``BAKERY_DATA_DIR`` points at, and stopped again when the bench ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bakery.engines import free_port
from tests.processes import ROOT, CeleryWorkerProcess, GunicornProcess

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
# The same handler with no layer at all: the reference for the latency a layer adds.
HANDLER_ALONE = "handler-alone"
REFERENCES = {HANDLER_ALONE: ("tests.bench.peers.settings_handler_alone", "/bench/orders/")}


def start_engines(database: str = BENCH_DATABASE) -> dict:
    """Start (or join) the embedded engines and recreate ``database``; return the child env."""
    import psycopg

    from bakery import engines

    engines.start()  # the engines, and this install's SECRET_KEY for the bench and its children
    database_url, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    parts = urlsplit(database_url)
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    bench_url = urlunsplit(parts._replace(path=f"/{database}"))
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = dict(os.environ)
    env.update(DATABASE_URL=bench_url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING",
               EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
               # The throughput figures measure the idempotency layer: a handful of shoppers sending
               # hundreds of orders each would meet the order throttles, so they are off here. The
               # flood case (g) runs a server of its own with the product's defaults.
               ORDER_THROTTLE_RATE="off", ORDER_BURST_RATE="off",
               # Every shopper and learner comes from loopback, one address standing for a room of
               # phones that each have their own: the bound on new customers per address is off.
               CUSTOMER_CREATION_RATE="off")
    os.environ.update(DATABASE_URL=bench_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bakery.settings")
    return env


def stop_engines() -> None:
    from bakery import engines

    if not os.environ.get("BENCH_KEEP_ENGINES"):
        engines.stop_embedded_redis()
    engines.stop_embedded_postgres()


def migrate(env: dict, peer_settings: list[str] | None = None) -> None:
    """Our schema and demo data in-process, then each peer's own tables from its settings."""
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_initial_data", verbosity=0)
    if peer_settings is None:
        peer_settings = [module for module, _url in IMPLEMENTATIONS.values() if module != "bakery.settings"]
    for settings_module in peer_settings:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                       env={**env, "DJANGO_SETTINGS_MODULE": settings_module})


_PORTS_GIVEN: set[int] = set()


def unused_port() -> int:
    """A free loopback port no other server of this run was given: the servers bind theirs only once
    they have started, so two asked in a row could otherwise be handed the same one."""
    port = free_port()
    while port in _PORTS_GIVEN:
        port = free_port()
    _PORTS_GIVEN.add(port)
    return port


class Server(GunicornProcess):
    """One gunicorn serving one implementation on a free loopback port, with one configuration for all."""

    def __init__(self, name: str, env: dict, log_dir: Path, slow_seconds: float, label: str | None = None):
        self.name = name
        self.settings_module, self.order_url = {**IMPLEMENTATIONS, **REFERENCES}[name]
        super().__init__(port=unused_port(), env={**env, "DJANGO_SETTINGS_MODULE": self.settings_module,
                                                  "TUNNEL_SLOW_SECONDS": str(slow_seconds)},
                         log_path=log_dir / f"gunicorn-{label or name}.log", workers=GUNICORN_WORKERS,
                         threads=GUNICORN_THREADS,
                         extra_args=("--timeout", "120", "--graceful-timeout", "5", "--preload", "--keep-alive", "300"))


class Worker(CeleryWorkerProcess):
    """A real Celery worker (the same command as `make demo`'s) for the back-office figures."""

    def __init__(self, env: dict, log_dir: Path, concurrency: int = 2):
        super().__init__(f"bench-{os.getpid()}", env={**env, "DJANGO_SETTINGS_MODULE": "bakery.settings"},
                         log_path=log_dir / "celery-worker.log", concurrency=concurrency, loglevel="WARNING")


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) used by ``pid`` and all its descendants, the exited ones
    included (their time is added to the parent that reaped them). Linux /proc; 0 without it."""
    if pid is None:
        return 0.0
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the name: state, ppid, ..., utime, stime, cutime, cstime are fields 14 to 17.
            stats[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    tree, grown = {pid}, True
    while grown:
        found = {child for child, (parent, _ticks) in stats.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    return sum(stats[member][1] for member in tree if member in stats) / os.sysconf("SC_CLK_TCK")


def room_defaults(env: dict) -> dict:
    """The bench's environment with the product's own throttles and tunnel timings, as `make demo` runs
    (but for the bound on new customers per address: its learners all come from loopback)."""
    return {k: v for k, v in env.items() if k not in ("ORDER_THROTTLE_RATE", "ORDER_BURST_RATE")}
