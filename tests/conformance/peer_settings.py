"""Conformance only: one peer package (CONFORMANCE_PEER) with the bench's own settings for it, in front
of the same fixture handlers as the bakery's layer, and with its key lifetime set to 1 s through its
own setting so that the suite's short-ttl vector applies to it as it does to the bakery."""

import os
from importlib import import_module

PEER = os.environ["CONFORMANCE_PEER"]
_bench = import_module(f"tests.bench.peers.settings_{PEER.replace('-', '_')}")
globals().update({name: value for name, value in vars(_bench).items() if name.isupper()})

ROOT_URLCONF = "tests.conformance.peer_urls"
CONFORMANCE_FIXTURE = False  # the routes are the peer's here, not the bakery's layer

if PEER == "drf-idempotency":
    IDEMPOTENCY = {**IDEMPOTENCY, "TTL_SECONDS": 1}  # noqa: F821 - from the bench settings
elif PEER == "drf-idempotencykey":
    IDEMPOTENCY_KEY_EXPIRATION_MINUTES = 1 / 60
elif PEER == "django-idempotency-key":
    # Its stored answers live in a cache; that cache's TIMEOUT is their lifetime.
    CACHES = {**CACHES, "conformance": {**CACHES["default"], "TIMEOUT": 1}}  # noqa: F821
    IDEMPOTENCY_KEY = {**IDEMPOTENCY_KEY, "STORAGE": {**IDEMPOTENCY_KEY["STORAGE"], "CACHE_NAME": "conformance"}}  # noqa: F821
