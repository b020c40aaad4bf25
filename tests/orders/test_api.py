"""Bad input gets a clear error and creates nothing; reads are scoped to the customer; docs describe it all."""

import uuid

import pytest
from django.test import Client

from orders.models import Event, IdempotencyRecord, Order

pytestmark = pytest.mark.django_db


def assert_nothing_created():
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize(
    "body, status, slug, says",
    [
        ({"items": [{"cake": "banana-bread", "quantity": 1}]}, 400, "invalid-order", "no cake called 'banana-bread'"),
        ({"items": [{"cake": "strawberry-shortcake", "quantity": 0}]}, 400, "invalid-order", "at least 1"),
        ({"items": [{"cake": "strawberry-shortcake", "quantity": -3}]}, 400, "invalid-order", "at least 1"),
        ({"items": [{"cake": "strawberry-shortcake", "quantity": 51}]}, 400, "invalid-order", "At most 50"),
        ({"items": [{"cake": "strawberry-shortcake", "quantity": "two"}]}, 400, "invalid-order", "valid integer"),
        ({"items": []}, 400, "invalid-order", "items"),
        ({}, 400, "invalid-order", "items"),
        ({"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": "x" * 501}, 400, "invalid-order",
         "500 characters"),
    ],
)
def test_invalid_orders_are_400_problems_and_create_nothing(customer_client, cake, body, status, slug, says):
    response = customer_client.order(uuid.uuid4(), body=body)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/" + slug)
    assert problem["status"] == status
    assert says in problem["detail"]
    assert_nothing_created()
    assert Event.objects.filter(kind="rejected").count() == 1


def test_note_of_exactly_500_characters_is_accepted(customer_client, cake):
    response = customer_client.order(uuid.uuid4(), body={"items": [{"cake": cake.slug, "quantity": 50}],
                                                          "note": "x" * 500})
    assert response.status_code == 201
    assert response.json()["total"] == "1200.00"


def _post_raw(client, data, content_type="application/json", **headers):
    return client.post("/api/orders/", data, content_type=content_type,
                       headers={"Idempotency-Key": str(uuid.uuid4()),
                                "X-CSRFToken": client.cookies["csrftoken"].value, **headers})


def test_malformed_json_is_400(customer_client, cake):
    response = _post_raw(customer_client, '{"items": [ {"cake": "strawberry-shortcake", ')
    assert response.status_code == 400
    assert response.json()["type"].endswith("/malformed-json")
    assert_nothing_created()


def test_body_over_64_kib_is_413(customer_client, cake):
    huge = '{"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": "' + "x" * 70_000 + '"}'
    response = _post_raw(customer_client, huge)
    assert response.status_code == 413
    assert response.json()["type"].endswith("/body-too-large")
    assert_nothing_created()


def test_form_encoded_body_is_415(customer_client, cake):
    response = _post_raw(customer_client, "items=strawberry-shortcake", content_type="text/plain")
    assert response.status_code == 415
    assert_nothing_created()


def test_write_without_csrf_token_is_403(cake):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/api/me/")
    response = browser.post("/api/orders/", {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                            content_type="application/json", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 403
    assert response.json()["type"].endswith("/csrf-failed")
    assert_nothing_created()


def test_switch_cannot_be_flipped_without_csrf(db):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/api/me/")
    response = browser.patch("/api/me/", {"idempotency": False}, content_type="application/json")
    assert response.status_code == 403
    assert browser.get("/api/me/").json()["idempotency"] is True


def test_orders_list_newest_first_and_detail(customer_client, cake):
    first = customer_client.order(uuid.uuid4()).json()
    second = customer_client.order(uuid.uuid4()).json()
    listed = customer_client.get("/api/orders/").json()
    assert [order["id"] for order in listed] == [second["id"], first["id"]]
    detail = customer_client.get(f"/api/orders/{first['id']}/")
    assert detail.status_code == 200
    assert detail.json()["idempotency_key"] == first["idempotency_key"]
    assert detail.json()["payment"] is None and detail.json()["emails_sent"] == 0


def test_unknown_order_is_a_404_problem(customer_client):
    response = customer_client.get("/api/orders/999999/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_openapi_schema_documents_the_header_and_every_answer(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    post = schema["paths"]["/api/orders/"]["post"]
    header = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is True
    assert "retry" in header["description"]
    assert set(post["responses"]) >= {"201", "400", "403", "409", "413", "422"}
    assert "Idempotent-Replayed" in post["responses"]["201"]["description"]
    assert "/api/me/" in schema["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_server_error_on_the_api_is_problem_json(customer_client, cake):
    from django.test import override_settings

    from orders.problems import server_error

    request = customer_client.get("/api/me/").wsgi_request
    response = server_error(request)
    assert response.status_code == 500 and response["Content-Type"] == "application/problem+json"
    with override_settings(DEBUG=False):
        assert b"Oven trouble" in server_error(customer_client.get("/").wsgi_request).content


def test_every_problem_type_is_explained_at_api_problems(client, db):
    from orders.problems import PROBLEMS

    catalogue = client.get("/api/problems/").json()["problems"]
    assert {entry["type"].rsplit("/", 1)[1] for entry in catalogue} == set(PROBLEMS)
    assert all(entry["advice"] for entry in catalogue)
