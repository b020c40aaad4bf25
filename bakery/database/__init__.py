"""PostgreSQL away: every process notices at once and says so at once.

When the server cannot be reached, a thread that asks the pool for a connection would wait the
whole DATABASE_POOL_TIMEOUT (10 s) and then fail with a 500. Instead each process keeps one mark,
"the database is down", set the moment a connection attempt fails (the pool's own attempts
included, bakery/database/base.py) or a connection breaks under a query. While it is set nobody
touches the pool: :func:`admit` refuses at once, except that one caller at a time (at most one every
PROBE_INTERVAL seconds) tries a direct connection with a one-second connect timeout, and clears the
mark when it works. The web tier answers a refusal with 503 ``database-unavailable`` and
Retry-After (bakery/outage.py).
"""

from __future__ import annotations

import threading
import time

import psycopg
from psycopg_pool import PoolTimeout

PROBE_INTERVAL = 0.25  # seconds between two direct connection attempts of one process while it is down
PROBE_CONNECT_TIMEOUT = 1
RETRY_AFTER_SECONDS = 2
# The connection parameters a direct probe needs (Django's also carry its cursor factory and adapters).
PROBE_PARAMETERS = ("dbname", "user", "password", "host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey")
# SQLSTATEs that mean the server or the connection went away, not that a statement failed.
ADMIN_SHUTDOWN_STATES = {"57P01", "57P02", "57P03"}


class DatabaseUnavailable(psycopg.OperationalError):
    """Refused without trying: this process knows PostgreSQL cannot be reached right now."""


_lock = threading.Lock()
_down_since: float | None = None
_probing = False
_last_probe = 0.0


def down_since() -> float | None:
    return _down_since


# Called (with no argument) each time this process finds the database gone after it was up.
when_down: list = []


def mark_down() -> None:
    global _down_since
    with _lock:
        news = _down_since is None
        if news:
            _down_since = time.monotonic()
    if news:
        for callback in when_down:
            callback()


def mark_up() -> None:
    global _down_since
    with _lock:
        _down_since = None


def is_outage(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) says PostgreSQL cannot be reached or hung up on us."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, (DatabaseUnavailable, PoolTimeout, psycopg.InterfaceError)):
            return True
        if isinstance(error, psycopg.OperationalError):
            state = getattr(error, "sqlstate", None)
            return state is None or state.startswith("08") or state in ADMIN_SHUTDOWN_STATES
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def noticed(error: BaseException) -> bool:
    """Mark the database down if ``error`` says it is away (a pool that only ran dry does not);
    returns whether the error is an outage for the caller's answer."""
    if not is_outage(error):
        return False
    cause = error
    while cause is not None and not isinstance(cause, psycopg.Error):
        cause = cause.__cause__ or cause.__context__
    if not isinstance(cause, PoolTimeout):
        mark_down()
    return True


def admit(connection_params: dict) -> None:
    """Return if the database may be used; raise DatabaseUnavailable at once if it is marked down
    and this caller is not the one probing it (or the probe found it still away)."""
    global _probing, _last_probe
    if _down_since is None:
        return
    with _lock:
        now = time.monotonic()
        if _probing or now - _last_probe < PROBE_INTERVAL:
            raise DatabaseUnavailable("PostgreSQL is not answering; not waiting for it.")
        _probing, _last_probe = True, now
    try:
        params = {name: value for name, value in connection_params.items() if name in PROBE_PARAMETERS and value}
        psycopg.connect(**params, connect_timeout=PROBE_CONNECT_TIMEOUT, autocommit=True).close()
    except psycopg.Error as error:
        raise DatabaseUnavailable(f"PostgreSQL is still not answering: {error}".strip()) from None
    else:
        mark_up()
    finally:
        with _lock:
            _probing = False
