"""``python -m tests.conformance [--peers]`` (``make conformance [PEERS=1]``): grade on the public vectors.

Starts the real stack on the embedded engines (a ``conformance`` database of its own), serves the
fixture routes behind the bakery's layer from gunicorn, with a Celery worker running beat so the
key purge keeps up with a 1.5 s key lifetime (the suite's ``short-ttl`` capability), runs every
vector, and prints a table and ``core X/11, profile Y/9``. With ``--peers`` it installs the bench's
peer packages if missing, puts each in front of the same fixture handlers, grades them the same way,
and rewrites the results in docs/conformance.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.processes import ROOT, CeleryWorkerProcess, GunicornProcess

DOC_PATH = ROOT / "docs" / "conformance.md"
BEGIN, END = "<!-- results: written by make conformance PEERS=1 -->", "<!-- end of results -->"

OURS = "freeds-bakery"
OURS_WAITING = "freeds-bakery, 2 s wait"
# The key lifetime and purge rhythm that give the bakery the suite's short-ttl capability (TTL <= 2 s).
SHORT_TTL = {"IDEMPOTENCY_KEY_TTL": "1.5", "IDEMPOTENCY_PURGE_INTERVAL_SECONDS": "0.25"}
IMPLEMENTATIONS = {
    OURS: {"DJANGO_SETTINGS_MODULE": "bakery.settings", "CONFORMANCE_FIXTURE": "1", **SHORT_TTL},
    # The same layer with the order API's policy: a duplicate waits up to 2 s for the first request.
    OURS_WAITING: {"DJANGO_SETTINGS_MODULE": "bakery.settings", "CONFORMANCE_FIXTURE": "1",
                   "CONFORMANCE_WAIT_SECONDS": "2", **SHORT_TTL},
}
PEERS = ("drf-idempotency", "drf-idempotencykey", "django-idempotency-key")
LOGIN_PATHS = {"drf-idempotencykey": "/bench/login/"}  # it guards logged-in users only


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance", description=__doc__)
    parser.add_argument("--peers", action="store_true", help="also grade the bench's peer packages")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/conformance.md alone")
    parser.add_argument("--only", action="append", help="run only this vector id (repeatable)")
    args = parser.parse_args()
    if args.peers:
        from tests.bench.__main__ import ensure_peers

        ensure_peers()
    columns = grade(peers=args.peers, only=args.only)

    from tests.conformance.runner import table

    print("\n" + table(columns, details=False) + "\n")
    for name, results in columns.items():
        for result in results:
            if not result.passed:
                print(f"  {name} {result.id} {result.status}: {'; '.join(result.failures)}")
    print()
    from tests.conformance.runner import summary

    for name, results in columns.items():
        print(f"{name}: {summary(results)}")
    if args.peers and not args.no_doc and not args.only:
        write_doc(columns)
        print(f"wrote {DOC_PATH.relative_to(ROOT)}")
    return 0


def grade(*, peers: bool, only: list[str] | None) -> dict:
    from bakery import engines
    from tests.bench import stack

    log_dir = engines.data_dir() / "conformance-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    metrics_dir = Path(tempfile.mkdtemp(prefix="conformance-metrics-"))
    servers: dict[str, GunicornProcess] = {}
    worker = None
    try:
        env = stack.start_engines(database="conformance")
        import django

        django.setup()
        stack.migrate(env, None if peers else [])
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        worker = CeleryWorkerProcess(f"conformance-{time.time_ns()}", env={**env, **SHORT_TTL},
                                     log_path=log_dir / "celery-worker.log", loglevel="WARNING",
                                     beat_schedule=log_dir / "celerybeat-schedule").launch()
        wanted = {**IMPLEMENTATIONS, **({peer: {"DJANGO_SETTINGS_MODULE": "tests.conformance.peer_settings",
                                                "CONFORMANCE_PEER": peer} for peer in PEERS} if peers else {})}
        for name, extra in wanted.items():
            servers[name] = GunicornProcess(env={**env, **extra}, log_path=log_dir / f"gunicorn-{_slug(name)}.log",
                                            workers=2, threads=8).launch()
        worker.wait_ready(timeout=90)
        for server in servers.values():
            server.wait_ready(timeout=90)

        from tests.conformance.runner import run_suite, summary

        columns = {}
        for name, server in servers.items():
            columns[name] = run_suite(server.url, login_path=LOGIN_PATHS.get(name), only=only)
            print(f"[conformance] {name}: {summary(columns[name])}", flush=True)
        return columns
    finally:
        for server in servers.values():
            server.stop()
        if worker is not None:
            worker.stop()
        stack.stop_engines()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def write_doc(columns: dict) -> None:
    from tests.conformance.runner import table

    failures = "\n".join(
        f"- **{name}**, `{result.id}` ({result.status}): {'; '.join(result.failures)}"
        for name, results in columns.items() for result in results if not result.passed
    )
    block = "\n".join([
        BEGIN,
        f"Run of {time.strftime('%Y-%m-%d')} (`make conformance PEERS=1`):",
        "",
        table(columns, details=False),
        "",
        "What each vector that did not pass got instead:",
        "",
        failures or "- nothing: every vector passed",
        END,
    ])
    text = DOC_PATH.read_text()
    DOC_PATH.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


if __name__ == "__main__":
    sys.exit(main())
