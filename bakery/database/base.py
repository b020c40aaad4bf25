"""Django's PostgreSQL backend, failing at once while PostgreSQL is away (bakery/database/__init__.py).

Two changes, nothing else: every new connection goes through :func:`bakery.database.admit` first,
and the pool (Django's psycopg pool, built as Django builds it) waits for a connection in short
slices, giving up as soon as its own attempt to connect found the server gone, instead of waiting
the whole DATABASE_POOL_TIMEOUT.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from bakery import database

logger = logging.getLogger(__name__)
WAIT_SLICE = 0.25  # seconds a thread waits for the pool before looking at the mark again


class WatchedConnection(psycopg.Connection):
    """The pool's connections: a failed attempt marks the database down, a good one marks it up."""

    @classmethod
    def connect(cls, *args, **kwargs):
        try:
            connection = super().connect(*args, **kwargs)
        except psycopg.OperationalError:
            database.mark_down()
            raise
        database.mark_up()
        return connection


class OutageAwarePool(ConnectionPool):
    def warm(self, connections: int, timeout: float = 30) -> int:
        """Open ``connections`` at once (the pool's workers make them side by side; growing on demand
        makes one at a time) and keep them, without raising the pool's min_size for good: one that
        breaks later is not replaced until it is needed. Returns how many are ready."""
        self.open(wait=False)
        floor, ceiling = self.min_size, self.max_size
        self.resize(min_size=min(connections, ceiling), max_size=ceiling)
        deadline = time.monotonic() + timeout
        try:
            while self.get_stats()["pool_available"] < min(connections, ceiling) and time.monotonic() < deadline:
                if database.down_since() is not None:
                    break
                time.sleep(0.05)
        finally:
            self.resize(min_size=floor, max_size=ceiling)
        return int(self.get_stats()["pool_available"])

    def getconn(self, timeout: float | None = None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if database.down_since() is not None:
                raise database.DatabaseUnavailable("PostgreSQL is not answering; not waiting for the pool.")
            left = deadline - time.monotonic()
            try:
                return super().getconn(max(0.01, min(WAIT_SLICE, left)))
            except PoolClosed:  # forgotten by _forget_pools meanwhile
                raise database.DatabaseUnavailable("PostgreSQL went away; its connections are closed.") from None
            except PoolTimeout:
                if left <= WAIT_SLICE:
                    raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None


class DatabaseWrapper(base.DatabaseWrapper):
    _connection_pools: dict[str, ConnectionPool]  # Django's, shared by every alias (not in its stubs)

    @property
    def pool(self):
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == base.NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True
            pool = OutageAwarePool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=ConnectionPool.check_connection if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                connection_class=WatchedConnection,
                **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]

    def get_new_connection(self, conn_params):
        database.admit(conn_params)
        try:
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError as error:
            database.noticed(error)
            raise


def _forget_pools() -> None:
    """PostgreSQL is gone: this process's pools are closed and forgotten, and the next request after
    the outage builds a fresh one that grows with the need. Kept, each of their broken connections
    would be replaced as it was found, all at once when PostgreSQL is back: a warmed pool refilled
    dozens of connections in front of the first phone to order again."""
    pools = DatabaseWrapper._connection_pools
    for alias, pool in list(pools.items()):
        if pools.pop(alias, None) is pool:
            # Closed beside the request that noticed the outage: closing waits for the pool's workers.
            threading.Thread(target=pool.close, kwargs={"timeout": 5}, name="pool-closer", daemon=True).start()


database.when_down.append(_forget_pools)


def warm_in_background(connections: int) -> threading.Thread:
    """The web process's pool warmed beside its first requests (bakery.asgi), not in front of them."""

    def warm() -> None:
        from django.db import connections as databases

        pool: OutageAwarePool | None = getattr(databases["default"], "pool", None)
        if pool is not None:
            logger.info("database pool: %d of %d connections ready", pool.warm(connections), connections)

    thread = threading.Thread(target=warm, name="pool-warmer", daemon=True)
    thread.start()
    return thread
