"""The project's own processes (gunicorn, a Celery worker, Celery beat) as tests and the bench run them.

Plain Python, no pytest: the bench (tests/bench) uses it outside pytest. Each process logs to a
file; ``start`` waits until the process is ready and fails at once, naming the log, if it dies.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from bakery.engines import free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"  # logs, screenshots and tables a run leaves for a person to read


def installed_python(accepts: str, names: list[str], pyenv_versions: str) -> str | None:
    """The first Python on this machine for which ``accepts`` (an expression on ``sys.version_info``)
    holds: this one, then ``names`` on PATH, then pyenv's versions matching ``pyenv_versions``
    (newest first). None if there is none."""
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [sys.executable, *(shutil.which(name) for name in names),
                  *sorted(glob.glob(f"{pyenv}/versions/{pyenv_versions}/bin/python3"), reverse=True)]
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "-c", f"import sys; print(bool({accepts}))"], capture_output=True, text=True)
        if done.stdout.strip() == "True":
            return candidate
    return None


def stop_process(process: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it is still there after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ProjectProcess:
    """``python -m <args>`` in the project folder with ``env``, its output in ``log_path``."""

    stop_grace = 15

    def __init__(self, args: list[str], *, env: dict, log_path: Path):
        self.args, self.env, self.log_path = args, env, log_path
        self.process: subprocess.Popen | None = None
        self.log = None

    def ready(self) -> bool:
        return True

    def launch(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", *self.args], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited at start; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[0]} was not ready within {timeout} s; see {self.log_path}")
            time.sleep(0.2)
        return self

    def start(self, timeout: float = 60):
        return self.launch().wait_ready(timeout)

    def stop(self) -> None:
        stop_process(self.process, self.stop_grace)
        if self.log:
            self.log.close()


class CeleryWorkerProcess(ProjectProcess):
    """A real `celery worker`, ready once it answers a ping through the broker."""

    stop_grace = 20  # a warm shutdown lets the task in hand finish

    def __init__(self, hostname: str, *, env: dict, log_path: Path, concurrency: int = 2, loglevel: str = "INFO",
                 beat_schedule: Path | None = None):
        self.hostname = hostname
        # With ``beat_schedule`` the worker also runs beat (celery worker --beat): one process for a
        # test that needs the periodic tasks, such as the key purge.
        beat = ["--beat", "--schedule", str(beat_schedule)] if beat_schedule else []
        super().__init__(["celery", "-A", "bakery", "worker", "--loglevel", loglevel, "--concurrency",
                          str(concurrency), "--hostname", f"{hostname}@%h", "--without-gossip", "--without-mingle",
                          *beat], env=env, log_path=log_path)

    def ready(self) -> bool:
        from bakery.celery import app

        try:
            return bool(app.control.ping(timeout=0.5, destination=[f"{self.hostname}@{os.uname().nodename}"]))
        except (OSError, OperationalError, RedisConnectionError):
            return False  # a broker connection that died with a restarted Redis: the next try makes a new one

    def kill(self) -> None:
        """SIGKILL: the crash a real worker suffers (OOM killer, power cut), no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class GunicornProcess(ProjectProcess):
    """gunicorn on a free port, ready once GET /api/me/ answers 200: by default bakery.wsgi with
    gthread workers (the bench's one configuration for every implementation); ``asgi=True`` runs
    the web tier exactly as `make demo` does (bakery.asgi, uvicorn's worker, see bakery.demo)."""

    def __init__(self, *, env: dict, log_path: Path, host: str = "127.0.0.1", port: int | None = None,
                 workers: int = 3, threads: int = 8, extra_args: tuple = (), asgi: bool = False):
        from bakery.demo import web_server_args

        self.port = port or free_port(host)
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"
        bind = f"{host}:{self.port}"
        if asgi:
            args = web_server_args(bind, workers)
        else:
            args = ["gunicorn", "bakery.wsgi", "--bind", bind, "--workers", str(workers),
                    "--worker-class", "gthread", "--threads", str(threads),
                    # gunicorn 27's control socket has one path per user; several gunicorns
                    # on one machine (tests, bench, a demo) would take it from each other.
                    "--no-control-socket"]
        super().__init__([*args, *extra_args], env=env, log_path=log_path)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/api/me/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
