"""What a curious learner sends on purpose: every answer is a 4xx problem+json that creates nothing, never a 5xx.

The Django test client re-raises any exception a view lets escape, so a 500 fails these tests loudly.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from orders.customers import COOKIE
from orders.models import Event, IdempotencyRecord, Order, OrderItem, OutboxMessage
from payments.models import Invoice

pytestmark = pytest.mark.django_db

DEEP = "[" * 10_000 + "]" * 10_000  # 20 KB, nested 10,000 deep


def nothing_created():
    return (Order.objects.count(), OrderItem.objects.count(), IdempotencyRecord.objects.count(),
            OutboxMessage.objects.count()) == (0, 0, 0, 0)


def post_raw(client, body: str, key=None, content_type="application/json", **headers):
    return client.post("/api/orders/", body, content_type=content_type,
                       headers={"Idempotency-Key": str(key or uuid.uuid4()),
                                "X-CSRFToken": client.cookies["csrftoken"].value, **headers})


def assert_problem(response, status: int, slug: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["detail"]
    if slug:
        assert body["type"].endswith("/" + slug), body["type"]
    return body


def test_a_nul_in_the_cake_slug_is_a_400_not_a_database_error(customer_client, cake):
    response = post_raw(customer_client, '{"items":[{"cake":"a\\u0000","quantity":1}]}')
    problem = assert_problem(response, 400, "invalid-request")
    assert "items[0].cake" in problem["detail"] and "NUL" in problem["detail"]
    assert nothing_created()


def test_a_nul_in_the_note_is_a_400(customer_client, cake):
    response = post_raw(customer_client, '{"items":[{"cake":"strawberry-shortcake","quantity":1}],"note":"a\\u0000b"}')
    assert "note" in assert_problem(response, 400, "invalid-request")["detail"]
    assert nothing_created()


def test_a_body_nested_10000_deep_is_a_400_for_an_order(customer_client, cake):
    response = post_raw(customer_client, DEEP)
    assert "levels deep" in assert_problem(response, 400, "invalid-request")["detail"]
    assert nothing_created()


def test_a_body_nested_10000_deep_is_a_400_for_the_switch_and_changes_nothing(customer_client):
    response = customer_client.patch("/api/me/", DEEP, content_type="application/json",
                                     headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    assert_problem(response, 400, "invalid-request")
    assert customer_client.get("/api/me/").json()["idempotency"] is True


@pytest.mark.parametrize("where", ["note", "cake"])
def test_a_finished_key_sent_again_with_a_lone_surrogate_is_a_400(customer_client, cake, where):
    key = uuid.uuid4()
    assert customer_client.order(key).status_code == 201
    line = {"cake": "strawberry-shortcake", "quantity": 1}
    body = {"items": [line], "note": "\ud800"} if where == "note" else {"items": [{**line, "cake": "\ud800"}]}
    response = post_raw(customer_client, json.dumps(body), key=key)  # json.dumps writes "\ud800" as an escape
    assert "lone surrogate" in assert_problem(response, 400, "invalid-request")["detail"]
    assert Order.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_a_lone_surrogate_with_a_new_key_is_a_400_too(customer_client, cake):
    response = post_raw(customer_client, '{"items":[{"cake":"strawberry-shortcake","quantity":1}],"note":"\\udfff"}')
    assert_problem(response, 400, "invalid-request")
    assert nothing_created()


def test_a_fingerprint_is_made_even_of_text_nobody_checked():
    from orders.idempotency import fingerprint_of

    assert fingerprint_of({"note": "\ud800"}) != fingerprint_of({"note": "\udfff"})


@pytest.mark.parametrize("number", ["INV-%C2%B2", "INV-%D9%A3", "INV-99999999999999999999", "INV-", "inv-1"])
def test_an_invoice_number_with_odd_digits_is_a_404(customer_client, number):
    response = customer_client.get(f"/invoices/{number}/")
    assert response.status_code == 404
    assert b"We couldn't find that" in response.content


@pytest.mark.parametrize("url", ["/", "/cakes/strawberry-shortcake/", "/kitchen/", "/timeline/", "/api/me/",
                                 "/api/orders/", "/admin/login/", "/workshop/"])
def test_a_session_cookie_holding_nul_makes_a_new_visitor_not_a_broken_page(cake, url):
    browser = Client()
    browser.cookies["sessionid"] = "abc\x00defghijklmnop"
    response = browser.get(url)
    assert response.status_code in (200, 302)


def test_a_session_cookie_holding_nul_still_lets_the_client_order(cake):
    browser = Client(enforce_csrf_checks=True)
    browser.cookies["sessionid"] = "abc\x00defghijklmnop"
    assert browser.get("/cakes/strawberry-shortcake/").status_code == 200  # a cake page makes a customer
    assert COOKIE in browser.cookies  # the customer is its own cookie: the bad session one does not matter
    response = browser.post("/api/orders/", {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                            content_type="application/json",
                            headers={"Idempotency-Key": str(uuid.uuid4()),
                                     "X-CSRFToken": browser.cookies["csrftoken"].value})
    assert response.status_code == 201


def test_a_form_body_with_2000_fields_is_a_problem_not_an_html_page(customer_client, cake):
    form = "&".join(f"field{i}=1" for i in range(2000))
    response = post_raw(customer_client, form, content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported-media-type")
    assert nothing_created()


def test_2000_fields_on_a_plain_api_view_is_a_problem_too(customer_client):
    form = "&".join(f"field{i}=1" for i in range(2000))
    response = customer_client.post("/api/problems/", form, content_type="application/x-www-form-urlencoded",
                                    headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("url", ["/api/orders/-1/", "/api/nope/", "/api/orders/abc/", "/api/", "/api/orders/1/x/"])
def test_an_api_url_that_matches_nothing_is_a_404_problem(customer_client, url):
    assert url in assert_problem(customer_client.get(url), 404, "not-found")["detail"]


def test_another_customers_order_is_a_404_problem(customer_client, cake):
    from tests.clients import BakeryClient

    theirs = customer_client.order(uuid.uuid4()).json()
    stranger = BakeryClient()
    stranger.start()
    assert_problem(stranger.get(f"/api/orders/{theirs['id']}/"), 404, "not-found")


@pytest.mark.parametrize("method, url", [("put", "/api/me/"), ("delete", "/api/orders/"), ("patch", "/api/orders/"),
                                         ("post", "/api/problems/"), ("post", "/api/schema/")])
def test_a_method_the_api_does_not_take_is_a_405_problem_with_allow(customer_client, method, url):
    token = customer_client.cookies["csrftoken"].value
    response = getattr(customer_client, method)(url, headers={"X-CSRFToken": token})
    assert_problem(response, 405, "method-not-allowed")
    assert response["Allow"]


def test_a_write_to_a_plain_api_view_without_csrf_is_a_403_problem(db):
    assert_problem(Client(enforce_csrf_checks=True).post("/api/problems/"), 403, "csrf-failed")


def test_twenty_lines_of_fifty_are_refused_as_one_cake_over_the_limit(customer_client, cake):
    body = {"items": [{"cake": "strawberry-shortcake", "quantity": 50}] * 20}
    problem = assert_problem(customer_client.order(uuid.uuid4(), body=body), 400, "invalid-order")
    assert "At most 50 of one cake per order" in problem["detail"] and "1000" in problem["detail"]
    assert nothing_created()
    assert Event.objects.filter(kind="rejected").count() == 1


def test_repeated_lines_within_the_limit_make_one_line(customer_client, cake, other_cake):
    body = {"items": [{"cake": "strawberry-shortcake", "quantity": 20}, {"cake": "lemon-drizzle", "quantity": 1},
                      {"cake": "strawberry-shortcake", "quantity": 30}]}
    response = customer_client.order(uuid.uuid4(), body=body)
    assert response.status_code == 201
    assert [(line["cake"], line["quantity"]) for line in response.json()["items"]] == [
        ("strawberry-shortcake", 50), ("lemon-drizzle", 1)]
    assert response.json()["total"] == "1216.50"


@pytest.mark.parametrize("cake_value", [{"slug": "strawberry-shortcake"}, ["strawberry-shortcake"], 7, None, True,
                                        "strawberry shortcake", "x" * 5000])
def test_a_cake_that_is_not_a_slug_is_no_such_cake(customer_client, cake, cake_value):
    response = customer_client.order(uuid.uuid4(), body={"items": [{"cake": cake_value, "quantity": 1}]})
    assert_problem(response, 400, "invalid-order")
    assert nothing_created()


@pytest.mark.django_db(transaction=True, databases=["default", "provider"])
def test_invoices_of_another_customer_are_not_shown(customer_client, cake):
    from payments import services
    from tests.clients import BakeryClient

    order = customer_client.order(uuid.uuid4()).json()
    services.payment_capture(order_id=order["id"])
    services.invoice_issue(order_id=order["id"])
    number = Invoice.objects.get().number
    assert customer_client.get(f"/invoices/{number}/").status_code == 200
    stranger = BakeryClient()
    stranger.start()
    assert stranger.get(f"/invoices/{number}/").status_code == 404
    assert Client().get(f"/invoices/{number}/").status_code == 404  # nor to a visitor without a session


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])
def test_a_form_body_through_the_tunnel_is_a_problem_not_a_500(customer_client, cake, settings, content_type):
    """The tunnel's CSRF check parses a form body before the order view reads it."""
    settings.TUNNEL_HOLD_SECONDS = 0
    response = post_raw(customer_client, "[]", content_type=content_type, **{"X-Bakery-Tunnel": "response-lost"})
    assert_problem(response, 415, "unsupported-media-type")
    assert nothing_created()
