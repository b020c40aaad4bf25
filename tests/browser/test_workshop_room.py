"""A workshop room in real Chromium: learners on the LAN address over plain HTTP, the facilitator's dashboard.

Plain http on a LAN address is not a secure context, so ``crypto.randomUUID`` does not exist
there: the page must still make a valid v4 key. The bakery is a real gunicorn bound to 0.0.0.0
with a real Celery worker; the pages are opened at the machine's non-loopback address.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from bakery.network import lan_address
from orders.models import Customer, Order
from payments.models import Invoice
from tests.processes import ARTIFACTS
from tests.servers import BakeryServer, CeleryWorker

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SHOTS = ARTIFACTS / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CAKE_PAGE = "/cakes/strawberry-shortcake/"
FACILITATOR_PASSWORD = secrets.token_urlsafe(12)  # made by the test, like each install makes its own


@pytest.fixture
def room(transactional_db, cake):
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback IPv4 address, so a room cannot reach it over the LAN")
    get_user_model().objects.create_superuser("admin", "admin@freeds-bakery.example", FACILITATOR_PASSWORD)
    server = BakeryServer(host="0.0.0.0", workers=2)
    server.env.update({
        "ALLOWED_HOSTS": f"127.0.0.1,localhost,{lan}",
        "CSRF_TRUSTED_ORIGINS": f"http://{lan}:{server.port}",
        "TUNNEL_CLIENT_TIMEOUT_SECONDS": "1.5",
        "TUNNEL_HOLD_SECONDS": "2",
        "TUNNEL_SLOW_SECONDS": "2.5",
    })
    server.start()
    Customer.objects.all().delete()  # the start-up probe's session is nobody in the room
    worker = CeleryWorker(name="room").start()
    yield f"http://{lan}:{server.port}"
    worker.stop()
    server.stop()


def order_through_the_tunnel(page, base: str, *, idempotency: bool) -> str:
    """What a learner does in Labs 1 and 2: one order, attempt 1 lost in the tunnel, retries after it."""
    from playwright.sync_api import expect

    page.goto(base + CAKE_PAGE)
    expect(page.locator("#idempotency-key")).to_have_value(UUID4)
    key = page.input_value("#idempotency-key")
    if not idempotency:
        with page.expect_response(lambda r: r.url.endswith("/api/me/") and r.request.method == "PATCH"):
            page.uncheck("#idempotency")
    page.check("#lose-connectivity")
    with page.expect_request(lambda r: r.url.endswith("/api/orders/") and r.method == "POST") as sent:
        page.click("#place-order")
    assert sent.value.headers["x-bakery-tunnel"] == "response-lost"
    assert sent.value.headers["idempotency-key"] == key
    page.uncheck("#lose-connectivity")  # out of the tunnel: the automatic retry gets through
    expect(page.locator("#status")).to_contain_text("confirmed", timeout=30_000)
    return key


def test_a_room_on_the_lan_gets_keys_without_random_uuid_and_the_dashboard_sees_it(room, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM reads below are plain sync
    # reads between browser steps (the usual setting for Django + Playwright tests).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    base = room
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(viewport={"width": 430, "height": 1400}, device_scale_factor=1)
            page = phone.new_page()
            page.goto(base + CAKE_PAGE)
            # The room's plain-http origin is not secure, so the browser withholds randomUUID...
            assert page.evaluate("window.isSecureContext") is False
            assert page.evaluate("typeof crypto.randomUUID") == "undefined"
            # ...and the page still makes a v4 key, kept in sessionStorage for every retry.
            expect(page.locator("#idempotency-key")).to_have_value(UUID4)
            key = page.input_value("#idempotency-key")
            stored = page.evaluate("JSON.parse(sessionStorage.getItem('bakery:intent:strawberry-shortcake')).key")
            assert stored == key and uuid.UUID(key).version == 4
            page.reload()
            assert page.input_value("#idempotency-key") == key  # a reload is not a new intent

            # Lab 1 on this phone: idempotency off, so the retry bakes a second cake with the same key.
            broken_key = order_through_the_tunnel(page, base, idempotency=False)
            assert broken_key == key
            assert Order.objects.filter(idempotency_key=key, idempotent=False).count() == 2

            # Lab 2 on a second phone (its own session, its own bakery): one cake.
            other = browser.new_context(viewport={"width": 430, "height": 1400}).new_page()
            fixed_key = order_through_the_tunnel(other, base, idempotency=True)
            assert Order.objects.filter(idempotency_key=fixed_key).count() == 1
            assert Customer.objects.count() == 2

            # The facilitator logs in through the admin and watches the room.
            desk = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            desk.goto(base + "/workshop/")
            expect(desk).to_have_url(re.compile(r"/admin/login/\?next=/workshop/$"))
            desk.fill("#id_username", "admin")
            desk.fill("#id_password", FACILITATOR_PASSWORD)
            desk.click("input[type=submit]")
            expect(desk).to_have_url(base + "/workshop/")
            assert desk.locator(".workshop-qr").get_attribute("data-room-url") == base + "/"
            expect(desk.locator(".workshop-qr svg")).to_be_visible()
            rows = desk.locator("#workshop-learners tbody tr")
            expect(rows).to_have_count(2)
            # The back office finishes while the page is open; htmx polling brings the counts in.
            expect(desk.locator('[data-total="charges-invoices"]')).to_have_text("3 · 3", timeout=30_000)
            expect(desk.locator('[data-total="duplicate_cakes"]')).to_have_text("1")
            expect(desk.locator('[data-total="prevented"]')).not_to_have_text("0")
            assert Invoice.objects.count() == 3

            page.reload()
            expect(page.locator("#kitchen, .kitchen").first).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=SHOTS / "learner-phone.png", full_page=True)
            desk.screenshot(path=SHOTS / "workshop-dashboard.png", full_page=True)
            side_by_side(browser, SHOTS / "workshop-dashboard.png", SHOTS / "learner-phone.png",
                         SHOTS / "workshop-side-by-side.png")
        finally:
            # ORM reads made while Playwright drives the page use their own connection; close it
            # so the test database can be dropped at the end of the run.
            connections.close_all()
            browser.close()


def side_by_side(browser, left, right, out) -> None:
    """Compose the two screenshots into one image with the browser itself (no imaging library)."""
    def data_uri(path):
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()

    page = browser.new_context(viewport={"width": 1760, "height": 900}).new_page()
    page.set_content(
        "<body style='margin:0;background:#ddd;display:flex;gap:16px;align-items:flex-start;padding:16px'>"
        f"<img src='{data_uri(left)}' style='width:1280px'><img src='{data_uri(right)}' style='width:430px'></body>"
    )
    page.screenshot(path=out, full_page=True)
