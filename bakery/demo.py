"""`make demo`: start the engines, prepare the database, and run web + worker + beat together.

Ctrl-C stops everything this started (web, worker, beat, then Redis and PostgreSQL if they are
the embedded ones) and leaves no stray process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from bakery import connections, engines
from bakery.env import env_bool
from bakery.workshop.qr import qr_terminal


def lan_address() -> str | None:
    """The address other machines in the room reach this one at (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def served_hosts(host: str) -> list[str]:
    """The host names the shop answers to: loopback always, the LAN address when serving a room."""
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
        hosts.append(host)
    if host in ("0.0.0.0", "::"):
        hosts += [address for address in [lan_address(), socket.gethostname()] if address]
    return hosts


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def debug_refusal(host: str) -> str | None:
    """DEBUG pages show settings, tracebacks and SQL to whoever asks: never to a room."""
    if host not in LOOPBACK and env_bool("DEBUG", False):
        return (f"Refusing to serve {host} with DEBUG on: every learner on the network could read the bakery's "
                "settings and tracebacks. Unset DEBUG (or set DEBUG=false) to serve the room, or keep "
                "HOST=127.0.0.1 to debug on this machine.")
    return None


WEB_THREADS = 24  # gthread threads per web worker process
WORKER_CONCURRENCY = 2  # Celery prefork children


def plan_connections(env: dict, web_workers: int) -> connections.Plan:
    limits = connections.server_limits(env["DATABASE_URL"])
    size = os.environ.get("DATABASE_POOL_SIZE")
    return connections.plan(
        web_workers=web_workers, web_threads=WEB_THREADS,
        back_office_processes=WORKER_CONCURRENCY + 2,  # the worker's children, its parent, beat
        provider_pool=connections.PROVIDER_POOL_SIZE, pool_size=int(size) if size else None, **limits,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args(argv)
    refusal = debug_refusal(args.host)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    if not engines.port_is_free(args.port, args.host):
        print(f"Port {args.port} on {args.host} is already in use (another bakery?). "
              f"Pick another one: make demo PORT={args.port + 1}", file=sys.stderr)
        return 2

    env = dict(os.environ)
    env["DATABASE_URL"] = engines.database_url()
    env["REDIS_URL"] = engines.redis_url()
    hosts = served_hosts(args.host)
    env.setdefault("ALLOWED_HOSTS", ",".join(hosts + ["testserver"]))
    env.setdefault("CSRF_TRUSTED_ORIGINS", ",".join(f"http://{h}:{args.port}" for h in hosts))
    env.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
    python = sys.executable

    def manage(*command):
        subprocess.run([python, "manage.py", *command], env=env, check=True)

    try:
        connection_plan = plan_connections(env, args.web_workers)
    except connections.NotEnoughConnections as refused:
        print(f"Not starting: {refused}", file=sys.stderr)
        engines.stop_embedded_redis() if not os.environ.get("REDIS_URL") else None
        engines.stop_embedded_postgres()
        return 2

    manage("migrate", "--noinput", "-v", "0")
    manage("load_initial_data")

    data = engines.data_dir()
    # Every web and worker process writes its duration histograms here and /metrics sums them; a
    # new bakery starts with an empty folder, as Prometheus expects of a restarted process.
    metrics_dir = data / f"metrics-{args.port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    commands = {
        "web": [python, "-m", "gunicorn", "bakery.wsgi", "--bind", f"{args.host}:{args.port}",
                "--workers", str(args.web_workers), "--worker-class", "gthread", "--threads", str(WEB_THREADS),
                # Each tunnelled attempt holds a thread for TUNNEL_HOLD_SECONDS: a room of 40
                # learners needs dozens of threads, and shutdown must outlast one hold.
                "--access-logfile", "-", "--graceful-timeout", "10",
                # gunicorn 27's control socket has one fixed path per user; a second gunicorn
                # (tests, bench) would fight over it.
                "--no-control-socket"],
        "worker": [python, "-m", "celery", "-A", "bakery", "worker", "--loglevel", "INFO",
                   "--concurrency", str(WORKER_CONCURRENCY),
                   "--hostname", "bakery-demo@%h"],
        "beat": [python, "-m", "celery", "-A", "bakery", "beat", "--loglevel", "WARNING",
                 "--schedule", str(data / "celerybeat-schedule"), "--pidfile", ""],
    }
    # The web tier pools its connections; the back office's processes run one task at a time and
    # need no pool (see bakery/connections.py for the sum).
    pool_sizes = {"web": str(connection_plan.web_pool), "worker": "0", "beat": "0"}
    children = {name: subprocess.Popen(cmd, env={**env, "DATABASE_POOL_SIZE": pool_sizes[name]})
                for name, cmd in commands.items()}

    shown_host = lan_address() if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown_host or '127.0.0.1'}:{args.port}/"
    # The facilitator's login for this database, as `manage.py facilitator_password` prints it:
    # shown here, in the terminal that started the demo, and nowhere else.
    shown = subprocess.run([python, "manage.py", "facilitator_password"], env=env, capture_output=True, text=True)
    login = (f"{shown.stdout.strip()}  (this install's own; `manage.py facilitator_password` prints it again)"
             if shown.returncode == 0 else
             "password changed in the admin; `.venv/bin/python manage.py facilitator_password --reset` makes a new one")
    print(f"\n  Freed's Bakery is open at {url}", flush=True)
    if args.host in ("0.0.0.0", "::"):
        print(f"  Learners: scan this or open {url} on the room's Wi-Fi", flush=True)
        print(qr_terminal(url), flush=True)
        print(f"  Facilitator dashboard: {url}workshop/ (staff login)", flush=True)
    print(f"  Admin: {url}admin/  {login}", flush=True)
    print(f"  PostgreSQL connections: at most {connection_plan.peak} of the {connection_plan.allowed} available "
          f"({args.web_workers} web workers x {connection_plan.web_pool} pooled).", flush=True)
    print(f"  Metrics (staff or METRICS_ALLOWED_IPS): {url}metrics", flush=True)
    if env.get("CONFORMANCE_FIXTURE", "").lower() in {"1", "true", "yes", "on"}:
        print(f"  Conformance fixture: {url}conformance/", flush=True)
    print("  Web, worker and beat are running. Press Ctrl-C to stop everything.\n", flush=True)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping the bakery.", flush=True)
                    exit_code = 1
                    stopping = True
            time.sleep(0.5)
    finally:
        shutdown(children)
        engines.stop_embedded_redis() if not os.environ.get("REDIS_URL") else None
        engines.stop_embedded_postgres()
        print("The bakery is closed.", flush=True)
    return exit_code


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
