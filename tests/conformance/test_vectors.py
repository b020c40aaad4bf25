"""The public conformance vectors against the bakery's layer, served by a real gunicorn.

A Celery worker with beat runs the key purge every 0.25 s over a 1.5 s key lifetime, which is the
suite's short-ttl capability, so the expiry vector runs too. docs/conformance.md says why the
profile vectors left out here are choices, not gaps.
"""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests.conformance.__main__ import SHORT_TTL
from tests.conformance.runner import load_vectors, run_suite, summary, table
from tests.servers import BakeryServer, CeleryWorker

PROFILE_WE_MEET = {
    "profile/4xx-replayed",
    "profile/5xx-not-stored",
    "profile/empty-key-rejected",
    "profile/key-too-long",
    "profile/problem-code-member",
    "profile/problem-content-type",
    "profile/replayed-header",
    "profile/retry-after-on-409",
}


@pytest.fixture
def fixture_server(transactional_db):
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = CeleryWorker("conformance", extra_env=SHORT_TTL, concurrency=1, with_beat=True).start()
    server = BakeryServer({"CONFORMANCE_FIXTURE": "1", **SHORT_TTL}, workers=2).start()
    yield server
    server.stop()
    worker.stop()


@pytest.mark.worker
def test_the_layer_meets_every_core_vector_and_the_profile_it_chose(fixture_server):
    results = run_suite(fixture_server.url)

    report = table({"freeds-bakery": results})
    assert len(results) == len(load_vectors()) == 20
    assert [r.id for r in results if r.tier == "core" and not r.passed] == [], report
    assert {r.id for r in results if r.tier == "profile" and r.passed} == PROFILE_WE_MEET, report
    assert summary(results) == "core 11/11, profile 8/9"


@pytest.mark.django_db
def test_the_fixture_is_not_served_unless_asked_for(client):
    assert not settings.CONFORMANCE_FIXTURE
    assert client.post("/conformance/echo", "x", content_type="text/plain").status_code == 404
