"""The conformance fixture's numbers are bounded: a customer cannot make it sleep forever or answer gigabytes.

Served here in-process (the routes exist only with CONFORMANCE_FIXTURE=1, so this module is its own
URLconf: the bakery's routes plus the fixture's). The vectors themselves run in tests/conformance.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import include, path

from bakery.urls import urlpatterns as bakery_urlpatterns

urlpatterns = [*bakery_urlpatterns, path("conformance/", include("bakery.conformance"))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def post(client, target: str):
    return client.post(f"/conformance/{target}", "x", content_type="text/plain",
                       headers={"Idempotency-Key": str(uuid.uuid4()), "X-CSRFToken": client.cookies["csrftoken"].value})


def invocations(client) -> int:
    return client.get("/conformance/counter").json()["count"]


@pytest.fixture
def runner(customer_client):
    customer_client.post("/conformance/reset", headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    return customer_client


@pytest.mark.parametrize("target", ["slow?ms=inf", "slow?ms=nan", "slow?ms=1e19", "slow?ms=-1", "slow?ms=10001",
                                    "slow?ms=1.5", "slow?ms=%C2%B2", "slow?ms=" + "9" * 5000, "large?bytes=1e19",
                                    "large?bytes=3e8", "large?bytes=2097153", "large?bytes=-5", "large?bytes=x"])
def test_a_number_out_of_bounds_is_a_400_problem_that_runs_nothing(runner, target):
    response = post(runner, target)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    name = target.split("?")[1].split("=")[0]
    assert f"{name} must be a whole number from 0 to" in response.json()["detail"]
    assert invocations(runner) == 0


def test_the_numbers_the_vectors_use_still_work(runner):
    large = post(runner, "large?bytes=1048577")
    assert large.status_code == 200 and len(large.content) == 1048577
    slow = post(runner, "slow?ms=5")
    assert slow.status_code == 200 and slow.content == b"slept:5"
    assert post(runner, "slow").content == b"slept:0"
    assert invocations(runner) == 3
