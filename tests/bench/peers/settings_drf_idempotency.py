"""Bench only: the order endpoint guarded by drf-idempotency 1.0.0 (defaults: DatabaseBackend,
30 s in-progress lock TTL, keys global to the site)."""

from bakery.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "drf_idempotency"]  # noqa: F405
ROOT_URLCONF = "tests.bench.peers.urls_drf_idempotency"
IDEMPOTENCY = {"REQUIRE_KEY": True}
