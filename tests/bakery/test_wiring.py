"""The project's wiring: migrations, settings that only describe, entry points that start the engines, a real
worker, and the compose file."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
import yaml
from django.core.management import call_command

from bakery.demo import WEB_WORKER_CLASS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_migrations_are_complete():
    """A model change without its migration fails here (makemigrations --check exits non-zero)."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_migrations_applied_on_postgresql():
    from django.db import connection

    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        # A conditional UniqueConstraint becomes a partial unique index in PostgreSQL.
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'one_order_per_customer_key'")
        (definition,) = cursor.fetchone()
    assert definition.startswith("CREATE UNIQUE INDEX")
    assert "(customer_id, idempotency_key)" in definition and "WHERE (idempotent AND (NOT key_expired))" in definition


@pytest.mark.django_db
def test_demo_data_loads_twice_without_duplicates():
    from django.contrib.auth import get_user_model

    from orders.models import Cake

    call_command("load_initial_data", verbosity=0)
    call_command("load_initial_data", verbosity=0)
    assert Cake.objects.count() >= 8
    assert Cake.objects.first().slug == "strawberry-shortcake"
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


@pytest.mark.worker
def test_a_real_worker_runs_a_task_through_redis(celery_worker):
    from bakery.celery import ping

    result = ping.delay("shortcake").get(timeout=30)
    assert result["pong"] == "shortcake"
    assert result["worker_pid"] != os.getpid()
    assert psutil.Process(result["worker_pid"]).parent().pid == celery_worker.process.pid


def test_embedded_engines_start_answer_and_stop_leaving_nothing_running():
    """With no DATABASE_URL/REDIS_URL a process starts real PostgreSQL and Redis, and stops them on exit."""
    script = """
import psycopg, redis, dj_database_url
from bakery import engines
db = dj_database_url.parse(engines.database_url())
with psycopg.connect(host=db["HOST"], user=db["USER"], dbname=db["NAME"]) as conn:
    print("postgres", conn.execute("show server_version").fetchone()[0])
client = redis.Redis.from_url(engines.redis_url())
print("redis", client.info()["redis_version"], client.ping())
"""
    with tempfile.TemporaryDirectory(prefix="bakery-engines-") as data:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["BAKERY_DATA_DIR"] = data
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert re.search(r"^postgres 16\.", done.stdout, re.M)
        assert "True" in done.stdout.splitlines()[-1]
        leftovers = [p.info for p in psutil.process_iter(["pid", "name", "cmdline"])
                     if data in " ".join(p.info["cmdline"] or [])]
        assert leftovers == []


def test_engines_left_behind_by_a_killed_process_are_stopped_by_the_next_one():
    """A process killed before its atexit ran leaves PostgreSQL and Redis running; the next
    process to use them adopts them and stops them when it exits."""
    start = "from bakery import engines; engines.database_url(); engines.redis_url()"
    with tempfile.TemporaryDirectory(prefix="bakery-engines-") as data:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["BAKERY_DATA_DIR"] = data

        def engines_running():
            return [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                    if data in " ".join(p.info["cmdline"] or []) and p.info["pid"] != os.getpid()]

        suicide = "; import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        killed = subprocess.run([sys.executable, "-c", start + suicide], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        assert killed.returncode == -9
        assert engines_running(), "the killed process left its engines running"
        done = subprocess.run([sys.executable, "-c", start], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert engines_running() == []


def test_importing_the_settings_starts_no_engine_and_says_what_is_missing():
    """Settings describe; an entry point starts the engines."""
    with tempfile.TemporaryDirectory(prefix="bakery-engines-") as data:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["BAKERY_DATA_DIR"] = data
        done = subprocess.run([sys.executable, "-c", "import bakery.settings"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        assert "DATABASE_URL is not set" in done.stderr
        assert list(Path(data).iterdir()) == []  # no engine was started, so none left data behind


def test_manage_py_starts_the_engines_it_needs_and_stops_them():
    with tempfile.TemporaryDirectory(prefix="bakery-engines-") as data:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(BAKERY_DATA_DIR=data, DJANGO_SETTINGS_MODULE="bakery.settings")
        done = subprocess.run([sys.executable, "manage.py", "migrate", "--check"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180)
        # Unapplied migrations on the new database: the command ran against the engines it started.
        assert done.returncode == 1, done.stderr
        assert (Path(data) / "postgres").is_dir() and (Path(data) / "redis").is_dir()
        leftovers = [p.info for p in psutil.process_iter(["pid", "name", "cmdline"])
                     if data in " ".join(p.info["cmdline"] or [])]
        assert leftovers == []


COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_five_services_with_healthchecks():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    assert all("healthcheck" in service for service in services.values())
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"


def test_compose_commands_run_the_apps_this_project_defines():
    services = COMPOSE["services"]
    assert "gunicorn bakery.asgi:application" in services["web"]["command"]
    assert f"--worker-class {WEB_WORKER_CLASS}" in services["web"]["command"]  # the worker `make demo` runs
    assert "manage.py migrate" in services["web"]["command"]
    assert services["worker"]["command"].startswith("celery -A bakery worker")
    assert services["beat"]["command"].startswith("celery -A bakery beat")
    assert (ROOT / "Dockerfile").exists()


def test_compose_environment_matches_what_settings_read():
    settings_source = "".join((ROOT / "bakery" / name).read_text()
                              for name in ("settings.py", "engines.py", "secret_files.py", "facilitator.py"))
    read_by_app = set(re.findall(r"""(?:environ(?:\.get)?[\[(]|env_bool\(|env_list\()\s*["']([A-Z_]+)["']""",
                                 settings_source))
    for name in ("web", "worker", "beat"):
        environment = COMPOSE["services"][name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEMO_ADMIN_PASSWORD", "DEBUG", "ALLOWED_HOSTS"} <= set(
            environment)
        assert set(environment) <= read_by_app, set(environment) - read_by_app
        assert environment["DEBUG"] == "false"
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:6379")
