"""A form Django will not read (a charset that is not UTF-8, too many fields, too big) is a 400 (or 413) on
every path that takes a form, never a 500, and changes nothing. So is a query string holding text
PostgreSQL cannot be asked about (a NUL), wherever it is sent: the admin's list filters included.

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
from tests.clients import BakeryClient

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


ADMIN_FILTERS = ["/admin/orders/event/?kind=", "/admin/orders/event/?source=", "/admin/orders/event/?key=",
                 "/admin/orders/order/?status=", "/admin/orders/customer/?last_scenario=",
                 "/admin/payments/charge/?status=", "/admin/orders/idempotencyrecord/?scope=",
                 "/admin/orders/cake/?q=", "/admin/payments/invoice/?q=", "/admin/orders/order/?idempotency_key="]


@pytest.mark.parametrize("url", ADMIN_FILTERS)
@pytest.mark.parametrize("text", ["%00", "a%00b", "%C0%80"])
def test_an_admin_list_filter_with_a_nul_is_a_400_for_the_facilitator(admin_client, url, text):
    response = admin_client.get(url + text)  # pytest-django's admin_client: a superuser, as the facilitator is
    if text == "%C0%80":  # an overlong NUL is not UTF-8: Django reads it as U+FFFD, a value like any other
        assert response.status_code in (200, 302), (url, response.status_code)
        return
    assert response.status_code == 400, (url, response.status_code)
    assert b"NUL character" in response.content


def test_a_nul_in_a_parameter_name_is_a_400_too(admin_client):
    assert admin_client.get("/admin/orders/event/?k%00ind=x").status_code == 400


def test_the_api_answers_a_nul_in_the_query_string_with_a_problem(customer_client):
    response = customer_client.get("/api/orders/?page=%00")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]


def test_a_good_admin_filter_still_filters(admin_client, busy_room):
    response = admin_client.get("/admin/orders/order/?status=placed")
    assert response.status_code == 200 and b"1 order" in response.content
