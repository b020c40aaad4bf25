"""A form Django will not read (a charset that is not UTF-8, too many fields, too big) is a 400 (or 413) on
every path that takes a form, never a 500, and changes nothing.

Django refuses a urlencoded body in any charset but UTF-8 with BadRequest wherever the form is first
read: in the CSRF check, in a view, or in the admin's login. Its own 400 view then read the form again
(its CSRF decorator) and raised again: a 500. The bakery's handler400 reads nothing of the request.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orders.models import Cake, Customer, Event, Order
from tests.conftest import BakeryClient

pytestmark = pytest.mark.django_db

CHARSETS = ["ascii", "latin-1", "utf-16", "ISO-8859-15", "cp1252"]


@pytest.fixture
def busy_room(staff_client, cake):
    """A learner with an order, so a reset that went through would show."""
    learner = BakeryClient()
    learner.start()
    assert learner.order(uuid.uuid4()).status_code == 201
    return staff_client, learner


def form_paths(learner_id: str) -> dict[str, str]:
    """Every path that takes a form POST, and who sends it there."""
    return {
        "/reset/": "learner", "/compare/start/": "learner", "/admin/login/": "visitor", "/admin/logout/": "staff",
        "/workshop/reset/": "staff", f"/workshop/learners/{learner_id}/reset/": "staff",
        "/admin/orders/cake/add/": "staff", "/admin/password_change/": "staff",
        "/api/problems/": "learner", "/api/orders/": "learner", "/api/me/": "learner",
    }


def sender(who: str, staff: Client, learner: BakeryClient) -> Client:
    if who == "visitor":
        visitor = Client(enforce_csrf_checks=True)
        visitor.get("/admin/login/")
        return visitor
    return staff if who == "staff" else learner


def state() -> tuple:
    return (Order.objects.count(), Event.objects.count(), Customer.objects.count(), Cake.objects.count(),
            get_user_model().objects.filter(is_staff=True).count())


@pytest.mark.parametrize("charset", CHARSETS)
def test_a_form_in_another_charset_is_a_400_on_every_form_path_and_changes_nothing(busy_room, charset):
    staff, learner = busy_room
    before = state()
    for path, who in form_paths(learner.customer_id).items():
        client = sender(who, staff, learner)
        token = client.cookies["csrftoken"].value
        response = client.post(path, f"csrfmiddlewaretoken={token}&name=Plum&username=admin&password=x",
                               content_type=f"application/x-www-form-urlencoded; charset={charset}",
                               headers={"X-CSRFToken": token})
        if path.startswith("/api/"):
            # The API reads JSON only; wherever the form was read first, the answer is a problem.
            assert response.status_code in (400, 415), (path, response.status_code)
            assert response["Content-Type"] == "application/problem+json", path
        else:
            assert response.status_code == 400, (path, response.status_code, response.content[:200])
            assert b"must be UTF-8 encoded" in response.content, path
        assert state() == before, path
    assert staff.get("/workshop/").status_code == 200  # still logged in: the logout did not happen


def test_the_api_answers_a_form_django_cannot_read_with_an_invalid_request_problem(customer_client):
    token = customer_client.cookies["csrftoken"].value
    response = customer_client.post("/api/problems/", "a=b", content_type="application/x-www-form-urlencoded; "
                                    "charset=latin-1", headers={"X-CSRFToken": token})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-request") and "UTF-8" in problem["detail"]


def test_a_page_form_with_too_many_fields_is_a_400_page(customer_client):
    form = "&".join(f"field{i}=1" for i in range(2000))
    response = customer_client.post("/reset/", form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


def test_a_page_form_over_64_kib_is_a_413_page(customer_client, cake):
    assert customer_client.order(uuid.uuid4()).status_code == 201
    response = customer_client.post("/reset/", "next=" + "x" * 70_000, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and b"64 KiB" in response.content
    assert Order.objects.count() == 1


def test_a_forged_host_is_a_400_page_not_a_500(db):
    response = Client().get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400 and b"could not read" in response.content
