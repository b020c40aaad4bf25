"""One key, one order from a browser's very first request, on gunicorn: Swagger UI's "Try it out" and
the cake page. The first order's answer is really lost (the bakery takes the request; the browser gets
nothing, cookie included), then the same key is sent again."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import expect

from orders.models import Customer
from tests.browser.chromium import SCREENSHOTS
from tests.orders.test_first_request import one_of_each
from tests.servers import BakeryServer

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bakery(cake, celery_worker):
    server = BakeryServer({"CLIENT_RETRY_BASE_SECONDS": "0.4"}).start()
    yield server
    server.stop()


def lose_the_first_answer(page, path: str = "**/api/orders/") -> list[int]:
    """The first POST to ``path`` reaches the bakery, with the browser's own headers and cookies, and
    its answer never reaches the browser (the connection is reset). Returns the statuses the bakery gave."""
    delivered: list[int] = []

    def tunnel(route):
        request = route.request
        if request.method != "POST" or delivered:
            route.continue_()
            return
        answer = httpx.post(request.url, headers=request.all_headers(), content=request.post_data_buffer, timeout=30)
        delivered.append(answer.status_code)
        route.abort("connectionreset")

    page.route(path, tunnel)
    return delivered


def test_swagger_try_it_out_first_answer_lost_then_execute_again_is_one_order(bakery, open_page):
    page = open_page()
    page.goto(bakery.url + "/api/docs/")
    operation = page.locator(".opblock-post", has_text="/api/orders/").first
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    key = str(uuid.uuid4())
    operation.locator("input[placeholder='Idempotency-Key']").fill(key)
    delivered = lose_the_first_answer(page)

    execute = operation.get_by_role("button", name="Execute")
    execute.click()
    expect(operation.locator(".responses-wrapper")).to_contain_text("Failed to fetch")
    execute.click()

    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text("201")
    expect(operation.locator(".live-responses-table")).to_contain_text("idempotent-replayed: true")
    page.screenshot(path=str(SCREENSHOTS / "swagger_first_answer_lost.png"), full_page=False)
    assert delivered == [201]
    one_of_each(key)
    assert Customer.objects.count() == 1


def test_swagger_two_first_writes_at_the_same_moment_are_one_order(bakery, open_page):
    page = open_page()
    page.goto(bakery.url + "/api/docs/")
    key = str(uuid.uuid4())
    statuses = page.evaluate("""async (key) => {
        const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
        const send = () => fetch('/api/orders/', {method: 'POST', headers: {
            'Content-Type': 'application/json', 'X-CSRFToken': token, 'Idempotency-Key': key},
            body: JSON.stringify({items: [{cake: 'strawberry-shortcake', quantity: 1}]})});
        return (await Promise.all([send(), send()])).map((answer) => answer.status);
    }""", key)

    assert statuses == [201, 201]
    one_of_each(key)
    assert Customer.objects.count() == 1


def test_the_cake_page_first_answer_lost_then_the_phones_retry_is_one_order(bakery, open_page):
    page = open_page()
    delivered = lose_the_first_answer(page)
    page.goto(bakery.url + "/cakes/strawberry-shortcake/")
    expect(page.locator("#key-short")).not_to_have_text("—")
    key = page.locator("#key-short").get_attribute("data-key")
    page.get_by_role("switch", name="Lose connectivity").uncheck()
    page.get_by_role("switch", name="Retry automatically").check()

    page.get_by_role("button", name="Place order").click()

    expect(page.get_by_role("status")).to_contain_text("confirmed", timeout=20_000)
    assert delivered == [201]
    one_of_each(key)
    assert Customer.objects.count() == 1
