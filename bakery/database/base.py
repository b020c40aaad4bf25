"""Django's PostgreSQL backend, failing at once while PostgreSQL is away (bakery/database/__init__.py).

Two changes, nothing else: every new connection goes through :func:`bakery.database.admit` first,
and the pool (Django's psycopg pool, built as Django builds it) waits for a connection in short
slices, giving up as soon as its own attempt to connect found the server gone, instead of waiting
the whole DATABASE_POOL_TIMEOUT.
"""

from __future__ import annotations

import time

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout

from bakery import database

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
    def getconn(self, timeout: float | None = None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if database.down_since() is not None:
                raise database.DatabaseUnavailable("PostgreSQL is not answering; not waiting for the pool.")
            left = deadline - time.monotonic()
            try:
                return super().getconn(max(0.01, min(WAIT_SLICE, left)))
            except PoolTimeout:
                if left <= WAIT_SLICE:
                    raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None


class DatabaseWrapper(base.DatabaseWrapper):
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
