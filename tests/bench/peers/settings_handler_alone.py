"""Bench only: the order handler with no idempotency layer at all, ours switched off or anyone's.
What a layer adds to a request is measured against this."""

from bakery.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.peers.urls_handler_alone"
