"""`make demo`'s supervisor, run for real: its own embedded engines in a temporary data folder, gunicorn,
a Celery worker and beat, orders placed over HTTP, and what its terminal shows."""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from bakery.client import CSRF_COOKIE, CSRF_HEADER, KEY_HEADER, ME_PATH, ORDERS_PATH, order_body
from bakery.connections import Plan
from bakery.demo import Screen, banner
from bakery.engines import free_port
from bakery.facilitator import Login
from tests.processes import ARTIFACTS, ROOT

pytestmark = [pytest.mark.worker]

START_SECONDS = 180  # a fresh PostgreSQL, the migrations, then web, worker and beat
STORY = r"\d\d:\d\d:\d\d  "


class Demo:
    """`python -m bakery.demo` with its output in a file, as a terminal would show it (no TTY: plain lines)."""

    def __init__(self, data: Path, port: int, extra_env: dict | None = None):
        self.data, self.port = data, port
        self.url = f"http://127.0.0.1:{port}"
        self.output = ARTIFACTS / f"demo-terminal-{port}.txt"
        self.output.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env = {**env, "BAKERY_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "bakery.settings",
                    # A short tunnel, so that a lost answer is quick to lose.
                    "TUNNEL_HOLD_SECONDS": "1", **(extra_env or {})}
        self.log = open(self.output, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bakery.demo", "--host", "0.0.0.0", "--port", str(port), "--web-workers", "1"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.output.read_text()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.text(), re.M):
                return found
            assert self.process.poll() is None, f"the demo exited:\n{self.text()}"
            time.sleep(0.3)
        pytest.fail(f"{pattern!r} did not appear within {timeout} s:\n{self.text()}")

    def manage(self, *args: str) -> str:
        """A command from the same checkout while the demo runs: it joins the demo's engines."""
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


class Customer:
    """A customer over plain HTTP with its own cookie jar."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=10)
        self.http.get(ME_PATH).raise_for_status()
        # Reading creates nothing: the first write makes this session a customer.
        me = self.http.patch(ME_PATH, json={"idempotency": True},
                             headers={CSRF_HEADER: self.http.cookies[CSRF_COOKIE]}).raise_for_status().json()
        self.id = me["customer"]

    def order(self, key, timeout: float = 10, **headers) -> httpx.Response:
        return self.http.post(ORDERS_PATH, json=order_body(), timeout=timeout, headers={
            CSRF_HEADER: self.http.cookies[CSRF_COOKIE], KEY_HEADER: str(key), **headers})

    def idempotency(self, on: bool) -> None:
        self.http.patch(ME_PATH, json={"idempotency": on},
                        headers={CSRF_HEADER: self.http.cookies[CSRF_COOKIE]}).raise_for_status()


@contextlib.contextmanager
def serving_demo(prefix: str, extra_env: dict | None = None) -> Iterator[Demo]:
    """A demo in a data folder of its own, once its banner says it serves; stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data:
        running = Demo(Path(data), free_port(), extra_env)
        try:
            running.wait_for(r"^  What happens, one line each:$", timeout=START_SECONDS)
            yield running
        finally:
            running.stop()


@pytest.fixture
def demo():
    with tempfile.TemporaryDirectory(prefix="bakery-demo-") as data:
        running = Demo(Path(data), free_port())
        try:
            yield running
        finally:
            running.stop()
            leftovers = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                         if data in " ".join(p.info["cmdline"] or [])]
            assert leftovers == [], "the demo left processes running"


def test_the_demo_terminal_shows_the_banner_then_one_line_per_thing_that_matters(demo):
    demo.wait_for(r"^  What happens, one line each:$", timeout=START_SECONDS)
    # Serving the room, the banner (on the projector) names the facilitator but not the password: it
    # says which command prints it, and that command, run in the operator's own terminal, does.
    login = r"user '(\w+)'  password '([^']+)'"
    user, password = re.search(login, demo.manage("manage.py", "facilitator_password")).groups()
    assert password not in demo.text()
    assert f"user '{user}'  (the password is not shown to the room: " \
           "`.venv/bin/python manage.py facilitator_password` prints it in your own terminal)" in demo.text()
    # Ready means ready: the web answers and the worker is already fulfilling orders.
    shopper = Customer(demo.url)
    key = uuid.uuid4()
    with pytest.raises(httpx.TimeoutException):  # the tunnel holds the answer past the phone's patience
        shopper.order(key, timeout=0.5, **{"X-Bakery-Tunnel": "response-lost"})
    retry = shopper.order(key)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    n = retry.json()["id"]
    demo.wait_for(rf"^  {STORY}#{n} Strawberry Shortcake ×1: placed → paid → invoiced → notified \(\d+\.\d s\)$")
    demo.wait_for(rf"^  {STORY}#{n} answer lost in the tunnel$")
    demo.wait_for(rf"^  {STORY}#{n} replayed to a retry$")

    # The README's way to re-run a step by name: it dedupes, and the terminal says so.
    demo.manage("-m", "celery", "-A", "bakery", "call", "payments.issue_invoice", "--args", f"[{n}]")
    demo.wait_for(rf"^  {STORY}#{n} invoice step: duplicate delivery skipped$")

    careless = Customer(demo.url)
    careless.idempotency(False)
    twice = uuid.uuid4()
    first, second = careless.order(twice).json()["id"], careless.order(twice).json()["id"]
    demo.wait_for(rf"^  {STORY}#{second} baked again for the key of #{first}: idempotency is off$")

    broke = Customer(demo.url)
    demo.manage("manage.py", "shell", "-c",
                f"from payments.provider import behaviour_set; behaviour_set(owner='{broke.id}', decline=True)")
    declined = broke.order(uuid.uuid4()).json()["id"]
    demo.wait_for(rf"^  {STORY}#{declined} payment declined \(insufficient_funds\)$")

    time.sleep(5)  # beat relays the outbox every 2 s: a few rounds with nothing to do
    assert demo.stop() == 0
    terminal = demo.text()
    (ARTIFACTS / "demo-terminal.txt").write_text(terminal)

    banner, story = terminal.split("  What happens, one line each:\n")
    assert "Freed's Bakery is open at http://" in banner
    assert "Learners: scan this or open" in banner and "▀" in banner  # the room's QR code
    assert "Facilitator login:" in banner and password not in banner
    assert f"Logs: {demo.data}/logs/{{web,worker,beat,story}}.log" in banner
    assert terminal.count("Freed's Bakery is open at") == 1
    story_lines = [line for line in story.splitlines() if line.strip()]
    assert story_lines[-1] == "The bakery is closed."
    told = sorted(re.sub(rf"^  {STORY}", "", re.sub(r"\(\d+\.\d s\)", "(…)", line)) for line in story_lines[:-1])
    fulfilled = "Strawberry Shortcake ×1: placed → paid → invoiced → notified (…)"
    assert told == sorted([  # one line each, nothing twice, nothing else
        f"#{n} answer lost in the tunnel", f"#{n} {fulfilled}", f"#{n} replayed to a retry",
        f"#{n} invoice step: duplicate delivery skipped",
        f"#{first} {fulfilled}", f"#{second} baked again for the key of #{first}: idempotency is off",
        f"#{second} {fulfilled}", f"#{declined} payment declined (insufficient_funds)",
    ]), story

    # Celery's start-up banner, task chatter and gunicorn's access log are in the files, not here.
    for chatter in ("bakery-demo@", "[tasks]", "[config]", "relay_outbox", "received", "succeeded",
                    "Booting worker", "POST /api/orders/"):
        assert chatter not in terminal
    logs = demo.data / "logs"
    worker_log = (logs / "worker.log").read_text()
    assert "[tasks]" in worker_log and "payments.relay_outbox" in worker_log
    assert "POST /api/orders/" in (logs / "web.log").read_text()
    assert (logs / "story.log").read_text().count("\n") == len(told)


@pytest.mark.parametrize("host, shown", [("127.0.0.1", True), ("localhost", True), ("0.0.0.0", False),
                                         ("192.168.1.20", False)])
def test_the_banner_shows_the_password_on_loopback_only(host, shown):
    args = argparse.Namespace(host=host, port=8000, web_workers=2)
    login = Login("admin", "s3cret-pw", "data folder")
    lines = banner(args, {}, {}, Plan(web_pool=8, peak=30, allowed=90), login=login)
    login_line = next(line for line in lines if "Facilitator login:" in line)
    assert ("s3cret-pw" in "\n".join(lines)) is shown
    assert "user 'admin'" in login_line and "manage.py facilitator_password" in login_line
    if not shown:
        assert "prints it in your own terminal" in login_line


def read_all(terminal: int) -> str:
    """Everything written to a pseudo-terminal whose other end is closed: one read may return only part
    of it, so read until the end (Linux answers EIO there) and close it."""
    chunks = []
    try:
        while chunk := os.read(terminal, 65536):
            chunks.append(chunk)
    except OSError:
        pass
    os.close(terminal)
    return b"".join(chunks).decode()


def test_on_a_terminal_the_banner_stays_pinned_and_the_story_scrolls_beneath_it(monkeypatch, tmp_path):
    """A scrolling region below the banner (what `make demo` does on a real terminal); a file gets plain lines."""
    monkeypatch.setenv("LINES", "30")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TERM", "xterm-256color")
    banner = ["", "  Freed's Bakery is open at http://127.0.0.1:8000/", "  What happens, one line each:"]
    terminal, tty = pty.openpty()
    with os.fdopen(tty, "w") as out:
        screen = Screen(out=out, story_file=tmp_path / "story.log")
        screen.show_banner(banner)
        screen.say("09:00:00  #1 replayed to a retry")
        screen.close()
    shown = read_all(terminal)
    assert shown.index("open at") < shown.index("\x1b[4;30r") < shown.index("#1 replayed")  # rows 4-30 scroll
    assert shown.rstrip().endswith("\x1b[r\x1b[30;1H")  # the whole screen scrolls again after Ctrl-C
    assert (tmp_path / "story.log").read_text() == "09:00:00  #1 replayed to a retry\n"

    with open(tmp_path / "plain.txt", "w") as out:
        screen = Screen(out=out)
        screen.show_banner(banner)
        screen.say("09:00:00  #1 replayed to a retry")
        screen.close()
    assert "\x1b" not in (tmp_path / "plain.txt").read_text()


def demo_part_pid(demo: Demo, name: str) -> int:
    """The pid of one part of a running demo: its engines' from their pid files, its children by command."""
    if name == "PostgreSQL":
        return int((demo.data / "postgres" / "postmaster.pid").read_text().split()[0])
    if name == "Redis":
        return int((demo.data / "redis" / "redis.pid").read_text().strip())
    word = {"The web": "gunicorn", "The worker": " worker ", "Beat": " beat "}[name]
    return next(child.pid for child in psutil.Process(demo.process.pid).children()
                if word in " ".join(child.cmdline()) + " ")


def order_until_taken(customer: Customer, key, within: float = 60) -> int:
    """Retry one order with its key, as the phone does (honouring Retry-After), until it is taken."""
    deadline, seen = time.monotonic() + within, []
    while time.monotonic() < deadline:
        try:
            answer = customer.order(key)
        except httpx.HTTPError as error:
            seen.append(type(error).__name__)
            time.sleep(0.5)
            continue
        seen.append(answer.status_code)
        if answer.status_code == 201:
            return answer.json()["id"]
        assert answer.status_code in (409, 503), (answer.status_code, answer.text)
        time.sleep(float(answer.headers.get("Retry-After", 1)))
    pytest.fail(f"the order was not taken within {within} s: {seen}")


def test_the_demo_starts_again_each_part_that_dies_and_says_so_one_line_each_way(demo):
    demo.wait_for(r"^  What happens, one line each:$", timeout=START_SECONDS)
    shopper = Customer(demo.url)
    for name in ("PostgreSQL", "Redis", "The worker", "Beat", "The web"):
        os.kill(demo_part_pid(demo, name), signal.SIGKILL)
        demo.wait_for(rf"^  {STORY}{name} went away; starting it again$", timeout=30)
        demo.wait_for(rf"^  {STORY}{name} is back \(\d+ s\)(; \d+ orders? waited)?$", timeout=120)
        # Nobody pressed Ctrl-C: an order still gets its one cake, all the way to its email.
        key = uuid.uuid4()
        n = order_until_taken(shopper, key)
        assert order_until_taken(shopper, key) == n  # the same key again: the same order
        demo.wait_for(rf"^  {STORY}#{n} Strawberry Shortcake ×1: placed → paid → invoiced → notified", timeout=90)
    assert demo.stop() == 0
    assert "Traceback" not in demo.text()
    assert "cannot read the timeline" not in demo.text()  # PostgreSQL away is said by its own line


def test_a_failure_while_starting_ends_with_one_sentence_not_a_traceback(tmp_path):
    env = {**os.environ, "BAKERY_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgres://nobody@127.0.0.1:1/bakery",
           "REDIS_URL": "redis://127.0.0.1:1/0", "DJANGO_SETTINGS_MODULE": "bakery.settings"}
    done = subprocess.run([sys.executable, "-m", "bakery.demo", "--port", str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    said = done.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("The bakery could not start: ") and "Run `make demo` again" in said[0]
