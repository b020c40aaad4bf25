"""``@idempotent`` on a plain Django view: what any endpoint gets from the layer, beyond the order API."""

import pytest

from orders.models import Event, IdempotencyRecord

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.orders.idempotent_urls")]


def post(client, path, key, body="{}"):
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, body, content_type="application/json", headers=headers)


def test_a_replay_carries_both_replay_headers_and_the_first_bytes(customer_client):
    first = post(customer_client, "/echo/", '"receipt-1"', '{"a": 1}')
    again = post(customer_client, "/echo/", '"receipt-1"', '{"a": 1}')
    assert first.status_code == again.status_code == 201
    assert first.json() == {"key": "receipt-1", "body": '{"a": 1}'}
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == again["Idempotency-Replayed"] == "true"
    assert "Idempotency-Replayed" not in first


def test_the_layer_accepts_any_sf_string_up_to_255_characters(customer_client):
    assert post(customer_client, "/echo/", '"' + "k" * 255 + '"').status_code == 201
    assert post(customer_client, "/echo/", r'"say \"hi\" \\ twice"').json()["key"] == 'say "hi" \\ twice'
    for bad in ['"' + "k" * 256 + '"', "bare-token", '""', '"tab\there"', '"unfinished']:
        response = post(customer_client, "/echo/", bad)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid-key"
    assert post(customer_client, "/echo/", None).json()["code"] == "missing-key"
    assert IdempotencyRecord.objects.count() == 2


def test_a_stored_4xx_is_replayed_without_running_the_handler_again(customer_client):
    first = post(customer_client, "/status/404/", '"gone"')
    again = post(customer_client, "/status/404/", '"gone"')
    assert first.status_code == again.status_code == 404
    assert again.content == b"answered 404" and again["Idempotent-Replayed"] == "true"
    assert Event.objects.filter(kind=Event.Kind.STEP_DONE).count() == 1


def test_a_5xx_is_never_stored_and_its_work_rolls_back_with_the_key(customer_client):
    failed = post(customer_client, "/status/503/", '"flaky"')
    assert failed.status_code == 503 and "Idempotent-Replayed" not in failed
    assert IdempotencyRecord.objects.count() == 0
    assert not Event.objects.filter(kind=Event.Kind.STEP_DONE).exists()
    assert Event.objects.filter(kind=Event.Kind.RELEASED, key="flaky").count() == 1
    again = post(customer_client, "/status/503/", '"flaky"')
    assert again.status_code == 503 and "Idempotent-Replayed" not in again


def test_a_key_reused_with_another_body_is_422_with_a_code(customer_client):
    post(customer_client, "/echo/", '"shared"', '{"a": 1}')
    response = post(customer_client, "/echo/", '"shared"', '{"a": 2}')
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "fingerprint-mismatch" and problem["type"].endswith("/idempotency-key-reused")
    assert problem["fields"] == ["body.a"]
