"""`make demo`: start the engines, prepare the database, and run web + worker + beat together.

The terminal stays quiet enough to project: the web, worker and beat logs go to files under the
data folder (``<BAKERY_DATA_DIR>/logs/``), the banner (URL, facilitator login, and on a LAN the
room's URL with a QR code) is printed once everything answers, and after it comes one line for
each thing a person cares about, read from the timeline's events in PostgreSQL
(:mod:`bakery.timeline.feed`). On a terminal the banner is pinned: the story scrolls beneath it.
``--verbose`` (``make demo VERBOSE=1``) shows the processes' own output instead, as it comes.

A part that dies (the embedded PostgreSQL or Redis, the web, the worker, beat) is started again,
with one terminal line when it went away and one when it is back (bakery/supervisor.py). Ctrl-C stops
everything this started (web, worker, beat, then Redis and PostgreSQL if they are the embedded ones)
and leaves no stray process. Whatever goes wrong, the terminal ends with a sentence, not a traceback.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django import db

from bakery import connections, engines, kitchen_fire
from bakery.demo_fire import KitchenFire
from bakery.env import env_bool
from bakery.facilitator import Login, facilitator_ensure
from bakery.network import lan_address
from bakery.supervisor import GaveUp, Part, clock
from bakery.workshop.qr import qr_terminal

READY_TIMEOUT = 120  # seconds for web, worker and beat to answer after start-up
POLL_SECONDS = 0.5
UNREADABLE_SAID_AFTER = 3  # seconds the timeline cannot be read before the terminal says so
WORKER_NAME = "bakery-demo"


def served_hosts(host: str) -> list[str]:
    """The host names the shop answers to: loopback always, the LAN address when serving a room."""
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
        hosts.append(host)
    if host in ("0.0.0.0", "::"):
        hosts += [address for address in [lan_address(), socket.gethostname()] if address]
    return hosts


# The web tier serves ASGI: gunicorn manages the processes, each runs one event loop (uvicorn's
# pure-Python h11 worker, with a deadline on request heads: bakery/web.py) and Django runs the sync
# views in a thread per request in flight. A tunnel hold is an await on that loop, not a thread, so
# a room of hundreds waits side by side.
WEB_WORKER_CLASS = "bakery.web.BakeryH11Worker"
# Pooled PostgreSQL connections a web process may have, if the server allows them: a room of 200 in
# the slow bakery has an order in the middle of its handler for each learner (engines.POSTGRES_SETTINGS).
WEB_POOL_TARGET = 160
# Of those, opened as a web process starts (settings.DATABASE_POOL_WARM): a room of 200 in the default
# scene had about 70 in use on each web process. An idle connection costs PostgreSQL about 1 MB.
WEB_POOL_WARM = 64
WORKER_CONCURRENCY = 2  # Celery prefork children


def web_server_args(bind: str, workers: int) -> list[str]:
    """gunicorn's arguments for the web tier, as `make demo` runs it (and the tests' BakeryServer)."""
    return ["gunicorn", "bakery.asgi:application", "--bind", bind, "--workers", str(workers),
            "--worker-class", WEB_WORKER_CLASS,
            # gunicorn 27's control socket has one fixed path per user; a second gunicorn
            # (tests, bench) would fight over it.
            "--no-control-socket"]


def plan_connections(env: dict, web_workers: int) -> connections.Plan:
    limits = connections.server_limits(env["DATABASE_URL"])
    size = os.environ.get("DATABASE_POOL_SIZE")
    return connections.plan(
        web_workers=web_workers, web_threads=WEB_POOL_TARGET,
        # the worker's children, its parent, beat, and this supervisor reading the timeline
        back_office_processes=WORKER_CONCURRENCY + 3,
        provider_pool=connections.PROVIDER_POOL_SIZE, pool_size=int(size) if size else None, **limits,
    )


def serves_room(host: str) -> bool:
    return host in ("0.0.0.0", "::")


def log_dir() -> Path:
    """Where the web, worker and beat logs go: ``logs/`` in the data folder (``.local/logs/`` by default)."""
    folder = engines.data_dir() / "logs"
    folder.mkdir(exist_ok=True)
    return folder


def commands(args, python: str) -> dict[str, list[str]]:
    data = engines.data_dir()
    return {
        "web": [python, "-m", *web_server_args(f"{args.host}:{args.port}", args.web_workers),
                # Shutdown must outlast one tunnel hold.
                "--access-logfile", "-", "--graceful-timeout", "10"],
        "worker": [python, "-m", "celery", "-A", "bakery", "worker", "--loglevel", "INFO",
                   "--concurrency", str(WORKER_CONCURRENCY), "--hostname", f"{WORKER_NAME}@%h"],
        "beat": [python, "-m", "celery", "-A", "bakery", "beat", "--loglevel", "WARNING",
                 "--schedule", str(data / "celerybeat-schedule"), "--pidfile", ""],
    }


Launch = tuple[list[str], dict]  # a child's command and environment, to start it again as it was


def start_children(args, env: dict, plan: connections.Plan
                   ) -> tuple[dict[str, subprocess.Popen], dict[str, Path], dict[str, Launch]]:
    """Web, worker and beat; quiet, each writes to its own log file (the previous run's is kept as .1)."""
    logs: dict[str, Path] = {}
    children, launches = {}, {}
    # The web tier pools its connections; the back office's processes run one task at a time and
    # need no pool (see bakery/connections.py for the sum).
    pool_sizes = {"web": str(plan.web_pool), "worker": "0", "beat": "0"}
    warm = {"web": str(min(WEB_POOL_WARM, plan.web_pool))}
    for name, command in commands(args, sys.executable).items():
        if not args.verbose:
            logs[name] = log_dir() / f"{name}.log"
            if logs[name].exists():
                logs[name].replace(logs[name].with_suffix(".log.1"))
        launches[name] = (command, {**env, "DATABASE_POOL_SIZE": pool_sizes[name],
                                    "DATABASE_POOL_WARM": warm.get(name, "0")})
        children[name] = start_child(*launches[name], logs.get(name))
    return children, logs, launches


def start_child(command: list[str], env: dict, log_path: Path | None) -> subprocess.Popen:
    """One child in its own session: Ctrl-C reaches the supervisor alone, which stops them in order (a
    second Ctrl-C would otherwise turn the worker's warm shutdown into a cold one). Its output is
    appended to ``log_path``, or shown here when there is none (--verbose)."""
    if log_path is None:
        return subprocess.Popen(command, env=env, start_new_session=True)
    with open(log_path, "a") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def restarter(name: str, children: dict[str, subprocess.Popen], logs: dict[str, Path], launch: Launch):
    """Start child ``name`` again as it was started, after killing what is left of its session (a
    gunicorn master's or Celery worker's orphaned children would hold the port or the queue)."""
    def restart() -> None:
        old = children[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(old.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            old.wait(5)
        children[name] = start_child(*launch, logs.get(name))
    return restart


def web_answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def worker_answers() -> bool:
    from bakery.celery import app  # after setup_django: the app is configured from Django's settings

    try:
        return bool(app.control.ping(timeout=0.5, destination=[f"{WORKER_NAME}@{socket.gethostname()}"]))
    except Exception:  # the broker is away (Redis restarting): the worker does not answer yet
        return False


def wait_until_ready(children: dict[str, subprocess.Popen], logs: dict[str, Path], local_url: str,
                     stopping) -> str | None:
    """None once the web answers, the worker answers a ping and beat runs; else what went wrong."""
    deadline = time.monotonic() + READY_TIMEOUT
    web = worker = False
    while not stopping():
        for name, child in children.items():
            if child.poll() is not None:
                return f"{name} exited with {child.returncode} while starting.{tail(logs.get(name))}"
        web = web or web_answers(local_url)
        worker = worker or (web and worker_answers())
        if web and worker:
            return None
        if time.monotonic() > deadline:
            late = "web" if not web else "worker"
            return f"{late} did not answer within {READY_TIMEOUT} s.{tail(logs.get(late))}"
        time.sleep(POLL_SECONDS)
    return "stopped while starting."


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    last = path.read_text(errors="replace").splitlines()[-lines:]
    return f"\nThe last lines of {path}:\n" + "\n".join(f"  {line}" for line in last)


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def debug_refusal(host: str) -> str | None:
    """DEBUG pages show settings, tracebacks and SQL to whoever asks: never to a room."""
    if host not in LOOPBACK and env_bool("DEBUG", False):
        return (f"Refusing to serve {host} with DEBUG on: every learner on the network could read the bakery's "
                "settings and tracebacks. Unset DEBUG (or set DEBUG=false) to serve the room, or keep "
                "HOST=127.0.0.1 to debug on this machine.")
    return None


PASSWORD_COMMAND = ".venv/bin/python manage.py facilitator_password"


def facilitator_shown(login: Login | None, *, host: str) -> str:
    """The facilitator's login as the banner shows it. Serving the room (any host but loopback), the
    terminal is likely on the projector, two lines under the QR code: the password stays off it, and
    the banner says which command prints it in the operator's own terminal."""
    if login is None or login.password is None:
        return f"password changed in the admin; `{PASSWORD_COMMAND} --reset` makes a new one"
    if host not in LOOPBACK:
        return (f"user {login.username!r}  (the password is not shown to the room: "
                f"`{PASSWORD_COMMAND}` prints it in your own terminal)")
    return (f"user {login.username!r}  password {login.password!r}  (this install's own; "
            f"`{PASSWORD_COMMAND}` prints it again)")


def banner(args, logs: dict[str, Path], env: dict, plan: connections.Plan, login: Login | None = None) -> list[str]:
    shown_host = lan_address() if serves_room(args.host) else args.host
    url = f"http://{shown_host or '127.0.0.1'}:{args.port}/"
    lines = ["", f"  Freed's Bakery is open at {url}"]
    if serves_room(args.host):
        lines.append(f"  Learners: scan this or open {url} on the room's Wi-Fi")
        lines += qr_terminal(url).rstrip("\n").splitlines()
        lines.append(f"  Facilitator dashboard: {url}workshop/ (staff login)")
    lines.append(f"  Facilitator login: {url}admin/  {facilitator_shown(login, host=args.host)}")
    lines.append(f"  PostgreSQL connections: at most {plan.peak} of the {plan.allowed} available "
                 f"({args.web_workers} web workers x {plan.web_pool} pooled).")
    lines.append(f"  Metrics (staff or METRICS_ALLOWED_IPS): {url}metrics")
    if env.get("CONFORMANCE_FIXTURE", "").lower() in {"1", "true", "yes", "on"}:
        lines.append(f"  Conformance fixture: {url}conformance/")
    if logs:
        folder = next(iter(logs.values())).parent
        lines.append(f"  Logs: {folder}/{{web,worker,beat,story}}.log  (make demo VERBOSE=1 shows them here)")
    lines.append("  Press Ctrl-C to stop everything.")
    lines += ["", "  What happens, one line each:"]
    return lines


class Screen:
    """The terminal: on a real one the banner is pinned at the top and the story scrolls beneath it
    (a scrolling region, which every terminal and tmux understand); elsewhere, plain lines. Lines that
    scroll out of a region never reach the terminal's scrollback, so the story is kept in a file too."""

    def __init__(self, out=sys.stdout, pin: bool = True, story_file: Path | None = None):
        self.out = out
        self.story_file = open(story_file, "a", buffering=1) if story_file else None  # noqa: SIM115
        self.pin = pin and out.isatty() and os.environ.get("TERM", "dumb") != "dumb"
        self.banner: list[str] = []
        self.story: collections.deque[str] = collections.deque(maxlen=200)
        self.pinned = False

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def show_banner(self, lines: list[str]) -> None:
        self.banner = lines
        self.draw()

    def draw(self) -> None:
        rows = shutil.get_terminal_size((80, 24)).lines
        self.pinned = self.pin and rows - len(self.banner) >= 6
        if not self.pinned:
            self.write("\n".join(self.banner) + "\n")
            return
        top = len(self.banner) + 1
        # Clear, draw the banner, keep rows top..rows for the story, and refill them.
        self.write("\x1b[r\x1b[2J\x1b[H" + "\n".join(self.banner) + f"\n\x1b[{top};{rows}r\x1b[{top};1H")
        recent = list(self.story)[-(rows - top):]
        if recent:
            self.write("\n".join(recent) + "\n")

    def say(self, line: str) -> None:
        self.story.append(line)
        self.write(f"  {line}\n")
        if self.story_file:
            self.story_file.write(line + "\n")

    def close(self) -> None:
        if self.story_file:
            self.story_file.close()
        if self.pinned:
            rows = shutil.get_terminal_size((80, 24)).lines
            self.write(f"\x1b[r\x1b[{rows};1H\n")


def setup_django(env: dict) -> None:
    """The supervisor reads the events itself, through Django, on the same database as its children,
    with one connection and no pool (it is counted as a back-office process in the plan)."""
    os.environ.update({name: env[name] for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")})
    os.environ["DATABASE_POOL_SIZE"] = "0"
    import django

    django.setup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--verbose", action="store_true",
                        help="show web, worker and beat output here instead of in their log files")
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except KeyboardInterrupt:
        print("Stopped while starting. The bakery is closed.", file=sys.stderr, flush=True)
        return 130
    except Exception as error:
        print(f"The bakery could not start: {what_failed(error)}. Run `make demo` again; if it fails the same way, "
              f"`make demo VERBOSE=1` shows every process's output (the logs are in {log_dir()}).",
              file=sys.stderr, flush=True)
        return 1


def what_failed(error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        command = " ".join(str(part) for part in error.cmd[1:3])
        return f"`{command}` exited with {error.returncode}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"


def start_refusal(args) -> str | None:
    """Why the bakery will not start with these arguments, before it starts anything."""
    if refusal := debug_refusal(args.host):
        return refusal
    if not engines.port_is_free(args.port, args.host):
        return (f"Port {args.port} on {args.host} is already in use (another bakery?). "
                f"Pick another one: make demo PORT={args.port + 1}")
    return None


def children_env(args) -> dict:
    """The environment web, worker and beat start with: this one's, with the hosts the shop answers to."""
    env = dict(os.environ)
    hosts = served_hosts(args.host)
    env.setdefault("ALLOWED_HOSTS", ",".join(hosts + ["testserver"]))
    env.setdefault("CSRF_TRUSTED_ORIGINS", ",".join(f"http://{h}:{args.port}" for h in hosts))
    env.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach the files as they happen
    return env


def fresh_metrics_dir(port: int) -> str:
    """Every web and worker process writes its duration histograms here and /metrics sums them; a
    new bakery starts with an empty folder, as Prometheus expects of a restarted process."""
    metrics_dir = engines.data_dir() / f"metrics-{port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    return str(metrics_dir)


class Signals:
    """Ctrl-C (or SIGTERM) asks the supervisor to stop; a resized terminal asks for the banner again."""

    def __init__(self):
        self.stopping, self.resized = False, 0
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGWINCH, self.resize)

    def stop(self, *_) -> None:
        self.stopping = True

    def resize(self, *_) -> None:
        self.resized += 1


def serve(args) -> int:
    refusal = start_refusal(args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2

    print("Starting Freed's Bakery: PostgreSQL, Redis, then web, worker and beat…", flush=True)
    redis_given = bool(os.environ.get("REDIS_URL"))
    database_given = bool(os.environ.get("DATABASE_URL"))
    engines.start()  # PostgreSQL, Redis and this install's SECRET_KEY, into the environment
    env = children_env(args)

    def manage(*command):
        subprocess.run([sys.executable, "manage.py", *command], env=env, check=True,
                       stdout=None if args.verbose else subprocess.DEVNULL)

    try:
        connection_plan = plan_connections(env, args.web_workers)
    except connections.NotEnoughConnections as refused:
        print(f"Not starting: {refused}", file=sys.stderr)
        if not redis_given:
            engines.stop_embedded_redis()
        engines.stop_embedded_postgres()
        return 2

    manage("migrate", "--noinput", "-v", "0")
    manage("load_initial_data")
    setup_django(env)
    env["PROMETHEUS_MULTIPROC_DIR"] = fresh_metrics_dir(args.port)

    signals = Signals()
    children, logs, launches = start_children(args, env, connection_plan)
    screen = Screen(pin=not args.verbose, story_file=log_dir() / "story.log")
    exit_code, fire = 0, None
    try:
        local_url = f"http://{'127.0.0.1' if serves_room(args.host) else args.host}:{args.port}/"
        problem = wait_until_ready(children, logs, local_url, lambda: signals.stopping)
        if problem:
            print(f"The bakery could not start: {problem}", file=sys.stderr, flush=True)
            return 1
        from bakery.timeline.feed import Feed  # it reads models, so only once Django is set up

        feed = Feed()
        screen.show_banner(banner(args, logs, env, connection_plan, login=facilitator_ensure()))
        parts = supervised(children, logs, launches, local_url, env,
                           own_postgres=not database_given, own_redis=not redis_given)
        fire = KitchenFire(parts, children, screen.say)
        exit_code = follow(children, logs, feed, screen, lambda: signals.stopping, lambda: signals.resized, parts, fire)
    finally:
        if fire is not None:
            fire.close()
        screen.close()
        db.connections.close_all()
        shutdown(children)
        if not redis_given:
            engines.stop_embedded_redis()
        engines.stop_embedded_postgres()
        print("The bakery is closed.", flush=True)
    return exit_code


def orders_waited(since: float) -> str:
    """'; 4 orders waited': the orders placed since ``since`` (time.monotonic()), which waited at placed."""
    from datetime import timedelta

    from django.utils import timezone

    from orders.models import Order

    try:
        went_away = timezone.now() - timedelta(seconds=time.monotonic() - since)
        count = Order.objects.filter(created_at__gte=went_away).count()
    except db.DatabaseError:
        db.connections.close_all()
        return ""
    return f"; {count} order{'' if count == 1 else 's'} waited" if count else ""


def postgres_waited(since: float) -> str:
    """'; 4 orders waited': the orders answered 503 since ``since`` (time.monotonic()), counted from the
    web's lines in the data folder, as PostgreSQL cannot tell while it is away (bakery/kitchen_fire.py)."""
    count = kitchen_fire.waited_since(time.time() - (time.monotonic() - since))
    return f"; {count} order{'' if count == 1 else 's'} waited" if count else ""


def supervised(children, logs, launches, local_url: str, env: dict, *, own_postgres: bool,
               own_redis: bool) -> list[Part]:
    """What the supervisor watches and starts again: the embedded engines (not servers it was given),
    then web, worker and beat."""
    parts = []
    if own_postgres:
        def start_postgres() -> None:
            engines.start_embedded_postgres()
            db.connections.close_all()

        parts.append(Part("PostgreSQL", engines.postgres_running, start_postgres, engines.postgres_running,
                          log=str(engines.data_dir() / "postgres"), waited=postgres_waited))
    if own_redis:
        port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        parts.append(Part("Redis", lambda: engines.redis_answers(port), engines.start_embedded_redis,
                          lambda: engines.redis_answers(port), log=str(engines.data_dir() / "redis" / "redis.log"),
                          waited=orders_waited))
    answers = {"web": lambda: web_answers(local_url), "worker": worker_answers, "beat": lambda: True}
    for name, said in (("web", "The web"), ("worker", "The worker"), ("beat", "Beat")):
        parts.append(Part(said, lambda name=name: children[name].poll() is None,
                          restarter(name, children, logs, launches[name]), answers[name],
                          log=str(logs.get(name, "")), waited=orders_waited if name == "worker" else lambda _: ""))
    return parts


def follow(children, logs, feed, screen: Screen, stopping, resized, parts: list[Part] = (),
           fire: KitchenFire | None = None) -> int:
    """Tell the story until Ctrl-C. A part that dies is started again, one line each way; one that
    keeps dying stops the bakery with a sentence saying which. A kitchen fire asked for on the
    dashboard is started and followed here too (bakery/demo_fire.py)."""
    unreadable_since, said = None, False
    drawn_for = resized()
    while not stopping():
        try:
            for part in parts:
                part.watch(screen.say, time.monotonic())
        except GaveUp as gave_up:
            screen.say(f"{clock()}  {gave_up}")
            return 1
        if fire is not None:
            fire.turn(time.monotonic())
        if any(part.down_at is not None and part.name == "PostgreSQL" for part in parts):
            time.sleep(POLL_SECONDS)  # the timeline is in PostgreSQL: it is read again once it is back
            continue
        if resized() != drawn_for:
            drawn_for = resized()
            screen.draw()
        try:
            for line in feed.poll():
                screen.say(line)
            unreadable_since, said = None, False
        except db.DatabaseError as error:
            # A PostgreSQL that died is said by its own line within a turn or two; this line is for
            # a database that stays unreadable while it runs (or one the bakery was given).
            unreadable_since = unreadable_since or time.monotonic()
            if not said and time.monotonic() - unreadable_since > UNREADABLE_SAID_AFTER:
                screen.say(f"(cannot read the timeline right now: {str(error).strip().splitlines()[0]})")
                said = True
            db.connections.close_all()
        time.sleep(POLL_SECONDS)
    return 0


def shutdown(children: dict[str, subprocess.Popen], grace: float = 10) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    sys.exit(main())
