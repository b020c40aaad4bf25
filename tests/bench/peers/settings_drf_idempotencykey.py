"""Bench only: the order endpoint guarded by drf-idempotencykey 0.2.0 (defaults: keys per user,
kept 60 minutes)."""

from bakery.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "drf_idempotencykey"]  # noqa: F405
ROOT_URLCONF = "tests.bench.peers.urls_drf_idempotencykey"
IDEMPOTENCY_KEY_REQUIRED = True
