"""Conformance only: the bench's URLs for the peer in CONFORMANCE_PEER, plus the fixture routes under
/conformance/ with that peer (its decorator, mixin or view marker) in front of the fixture handlers."""

from importlib import import_module

from django.urls import include, path

from bakery.conformance import fixture_urls
from orders.authentication import CustomerAPIView
from tests.conformance.peer_settings import PEER


def _unguarded(handler):
    return handler


def _peer_wiring() -> dict:
    if PEER == "drf-idempotency":
        from drf_idempotency import idempotent

        return {"guard": idempotent()}
    if PEER == "drf-idempotencykey":
        from drf_idempotencykey.mixins import DrfIdempotencyKeyMixin

        return {"guard": _unguarded, "base": type("PeerView", (DrfIdempotencyKeyMixin, CustomerAPIView), {})}
    if PEER == "django-idempotency-key":
        from idempotency_key.decorators import idempotency_key

        return {"guard": _unguarded, "wrap_view": idempotency_key}
    raise ValueError(f"unknown peer {PEER!r}")


_bench = import_module(f"tests.bench.peers.urls_{PEER.replace('-', '_')}")
handler404 = _bench.handler404
urlpatterns = [path("conformance/", include(fixture_urls(**_peer_wiring()))), *_bench.urlpatterns]
