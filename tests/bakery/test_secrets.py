"""Secrets per install: a SECRET_KEY of its own, a facilitator password nobody else knows, throttled
admin logins, no DEBUG on the room's network, and no secret anywhere in the repository."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from bakery.engines import free_port
from tests.servers import worker_environment

ROOT = Path(__file__).resolve().parent.parent.parent
# What every entry point does (manage.py, bakery.wsgi, the Celery app): engines.start(), then Django.
PRINT_KEY = ("from bakery import engines; engines.start(); import django; django.setup(); "
             "from django.conf import settings; print(settings.SECRET_KEY)")


def start_in(data_dir: Path, **extra) -> str:
    """Start the bakery's settings in a fresh process on this data folder; return its SECRET_KEY."""
    env = {k: v for k, v in worker_environment().items() if k != "SECRET_KEY"}
    env.update(BAKERY_DATA_DIR=str(data_dir), **extra)
    done = subprocess.run([sys.executable, "-c", PRINT_KEY], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.django_db
def test_two_fresh_installs_make_their_own_secret_key_and_keep_it(tmp_path):
    first, second = tmp_path / "clone-a", tmp_path / "clone-b"
    key_a, key_b = start_in(first), start_in(second)
    assert key_a != key_b and len(key_a) >= 50 and len(set(key_a)) >= 5
    assert start_in(first) == key_a, "a restart reuses the install's key (sessions survive it)"
    saved = first / "secret_key"
    assert saved.read_text().strip() == key_a
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


@pytest.mark.django_db
def test_processes_starting_together_agree_on_one_new_key(tmp_path):
    """web, worker and beat start at the same moment on a fresh install: one key wins for all."""
    with ThreadPoolExecutor(6) as pool:
        keys = set(pool.map(lambda _: start_in(tmp_path / "fresh"), range(6)))
    assert len(keys) == 1


@pytest.mark.django_db
def test_secret_key_from_the_environment_wins_and_nothing_is_written(tmp_path):
    chosen = uuid.uuid4().hex * 2
    assert start_in(tmp_path / "env", SECRET_KEY=chosen) == chosen
    assert not (tmp_path / "env" / "secret_key").exists()


# --- the facilitator's password ------------------------------------------------------------------


def facilitator_line(*args) -> tuple[str, str]:
    out = StringIO()
    call_command("facilitator_password", *args, stdout=out)
    username, password = re.search(r"user '([^']+)'\s+password '([^']+)'", out.getvalue()).groups()
    return username, password


def admin_login(username, password, address="192.0.2.10"):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/admin/login/?next=/workshop/", {"username": username, "password": password,
                                                             "next": "/workshop/"})
    return client, response


@pytest.mark.django_db
def test_the_facilitator_password_is_random_printed_by_a_command_and_can_be_reset(monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    username, password = facilitator_line()
    assert username == "admin" and len(password) >= 16
    _, login = admin_login(username, password)
    assert login.status_code == 302 and login["Location"] == "/workshop/"

    _, new = facilitator_line("--reset")
    assert new != password
    assert admin_login(username, password)[1].status_code == 200  # the old one is refused (form again)
    assert admin_login(username, new)[1].status_code == 302
    assert facilitator_line() == (username, new), "printing it again shows the current one"
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    assert admin_login(username, new)[1].status_code == 302, "loading the demo data again keeps it"


@pytest.mark.django_db
def test_an_account_with_a_password_from_before_gets_a_fresh_random_one(monkeypatch, tmp_path):
    """An install whose admin was made before (with a published password) and whose data folder has
    no password of its own: loading the demo data replaces it."""
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("BAKERY_DATA_DIR", str(tmp_path))
    published = "a-password-everybody-has-read"
    get_user_model().objects.create_superuser("admin", "admin@example.com", published)
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    assert admin_login("admin", published)[1].status_code == 200
    assert admin_login("admin", facilitator_line()[1])[1].status_code == 302


@pytest.mark.django_db
def test_a_password_changed_in_the_admin_is_kept_and_not_claimed(monkeypatch, tmp_path):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("BAKERY_DATA_DIR", str(tmp_path))
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    user = get_user_model().objects.get(username="admin")
    mine = uuid.uuid4().hex
    user.set_password(mine)
    user.save()
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    assert admin_login("admin", mine)[1].status_code == 302
    with pytest.raises(Exception, match="changed in the admin"):
        call_command("facilitator_password", stdout=StringIO())


@pytest.mark.django_db
def test_each_database_keeps_its_own_login_in_a_shared_data_folder(monkeypatch, tmp_path):
    """make demo and make bench share a data folder with two databases: loading the demo data into
    one must not take the other's password away."""
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("BAKERY_DATA_DIR", str(tmp_path))
    other = {"bakery@/elsewhere:": {"username": "admin", "password": "the-demo-database-s-own"}}
    (tmp_path / "facilitator.json").write_text(json.dumps(other))
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    _, mine = facilitator_line()
    logins = json.loads((tmp_path / "facilitator.json").read_text())
    assert logins["bakery@/elsewhere:"] == other["bakery@/elsewhere:"]
    assert mine in [login["password"] for login in logins.values()] and mine != "the-demo-database-s-own"


@pytest.mark.django_db
def test_compose_sets_the_password_from_its_env_file(monkeypatch):
    chosen = uuid.uuid4().hex
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", chosen)
    call_command("load_initial_data", verbosity=0, stdout=StringIO())
    assert admin_login("admin", chosen)[1].status_code == 302


# --- admin logins are throttled ------------------------------------------------------------------


@pytest.mark.django_db
def test_wrong_passwords_lock_that_name_from_that_address_only():
    password = uuid.uuid4().hex
    get_user_model().objects.create_superuser("facilitator", "f@example.com", password)
    learner = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    statuses = [admin_login("facilitator", f"guess-{n}", learner)[1].status_code for n in range(5)]
    assert statuses == [200] * 4 + [429]  # the form again with an error, then the fifth locks
    client, locked = admin_login("facilitator", password, learner)  # even the right password now
    assert locked.status_code == 429 and b"Too many wrong passwords" in locked.content
    assert "_auth_user_id" not in client.session
    _, facilitator = admin_login("facilitator", password, "192.0.2.77")
    assert facilitator.status_code == 302, "the facilitator's own machine is not locked out by a learner"


# --- DEBUG never faces the room ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.5"])
def test_the_demo_refuses_to_serve_the_network_with_debug_on(host, tmp_path):
    env = {**os.environ, "DEBUG": "true", "BAKERY_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "bakery.demo", "--host", host, "--port", str(free_port())],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Refusing to serve" in done.stderr and "DEBUG" in done.stderr
    assert not (tmp_path / "postgres").exists(), "it refused before starting anything"


# --- nothing secret in the repository --------------------------------------------------------------


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in names if (ROOT / name).suffix in {".md", ".py", ".yml", ".json", ".html", ".txt",
                                                                      ".example", ""}]


# A key written out: SECRET_KEY = "…", SECRET_KEY=… (shell, .env), environ.get("SECRET_KEY", "…"), YAML.
LITERAL_KEYS = [re.compile(r"""SECRET_KEY\s*[:=]\s*["'][^"'${}]{8,}["']"""),
                re.compile(r"""SECRET_KEY=[^\s"'${}]{8,}"""),
                re.compile(r"""(?:get|getenv|setdefault)\(\s*["']SECRET_KEY["']\s*,\s*["'][^"']{8,}["']"""),
                re.compile(r"""SECRET_KEY:[ \t]+[^\s"'${][^\s]{7,}""")]


def test_no_admin_password_or_secret_key_is_written_in_the_repository():
    for path in tracked_files():
        if path.is_file():
            text = path.read_text(errors="ignore")
            assert not re.search(r"admin\s*/\s*freeds-bakery", text), path
            for literal in LITERAL_KEYS:
                assert not literal.search(text), (path, literal.search(text))


def test_compose_takes_its_secrets_from_an_env_file_it_refuses_to_start_without():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("web", "worker", "beat"):
        environment = compose["services"][name]["environment"]
        for secret in ("SECRET_KEY", "DEMO_ADMIN_PASSWORD"):
            assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", environment[secret]), environment[secret]
        assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    example = (ROOT / ".env.example").read_text()
    for secret in ("SECRET_KEY", "DEMO_ADMIN_PASSWORD", "POSTGRES_PASSWORD"):
        assert re.search(rf"^{secret}=$", example, re.M), f"{secret} is left empty in .env.example"
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 0, ".env is git-ignored"
