"""How many PostgreSQL connections `make demo` may open, decided before anything starts.

Every process bounds its own connections: a web process borrows from a pool of
``DATABASE_POOL_SIZE`` (plus ``PROVIDER_POOL_SIZE`` for the fake provider's alias), a Celery
prefork child and beat run without a pool, one connection per alias. So the whole demo opens at
most ``web_workers x (pool + provider) + back office``, and that must fit in what the server
allows (``max_connections`` less the superuser reserve, the connections already open and a
little headroom for `manage.py` and an operator). ``plan`` gives each web process as much of it
as it can use (at most the demo's WEB_POOL_TARGET) or refuses up front with a clear message:
the room never meets "too many clients" in the middle of a workshop.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# The fake provider's alias is used for one statement per charge: two connections are plenty.
PROVIDER_POOL_SIZE = 2
HEADROOM = 5  # manage.py, an operator's `celery call`, psql
MIN_WEB_POOL = 4  # fewer and a web process's threads mostly queue for a connection
PER_UNPOOLED_PROCESS = 2  # the default alias and the provider's, one connection each


class NotEnoughConnections(Exception):
    pass


@dataclass(frozen=True)
class Plan:
    web_pool: int
    peak: int  # the most connections the demo's processes can ever hold together
    allowed: int


def plan(*, web_workers: int, web_threads: int, back_office_processes: int, provider_pool: int,
         max_connections: int, reserved: int, in_use: int, pool_size: int | None = None) -> Plan:
    allowed = max_connections - reserved - in_use - HEADROOM
    back_office = back_office_processes * PER_UNPOOLED_PROCESS
    fits = (allowed - back_office) // web_workers - provider_pool
    web_pool = min(web_threads, fits) if pool_size is None else pool_size
    peak = web_workers * (web_pool + provider_pool) + back_office
    if peak > allowed or web_pool < MIN_WEB_POOL:
        most = max(0, (allowed - back_office) // (MIN_WEB_POOL + provider_pool))
        raise NotEnoughConnections(
            f"WEB_WORKERS={web_workers} needs {web_workers} x ({max(web_pool, MIN_WEB_POOL)} + {provider_pool}) "
            f"+ {back_office} PostgreSQL connections, but this server allows {allowed} more "
            f"(max_connections {max_connections}, {reserved} reserved, {in_use} in use, {HEADROOM} kept free). "
            f"Use WEB_WORKERS={most} or fewer"
            + (", or a smaller DATABASE_POOL_SIZE" if pool_size is not None else "")
            + ", or raise PostgreSQL's max_connections."
        )
    return Plan(web_pool=web_pool, peak=peak, allowed=allowed)


def server_limits(database_url: str) -> dict:
    """max_connections, the superuser reserve and the connections open right now."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int"
        ).fetchone()
    # This very connection is counted as in use; it is closed before anything starts.
    return {"max_connections": row[0], "reserved": row[1], "in_use": row[2] - 1}
