"""Browser security headers on every page: a Content-Security-Policy that allows no inline script, the
framing/sniffing/referrer headers and cookie flags, Swagger UI from our own origin, and check --deploy."""

from __future__ import annotations

import re
import uuid
from io import StringIO
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from orders.customers import COOKIE
from payments import services

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def csp_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.fixture
def visited(customer_client, cake):
    """Every kind of page and answer a browser can get, with the data they show."""
    order = customer_client.order(uuid.uuid4()).json()
    services.payment_capture(order_id=order["id"])
    services.invoice_issue(order_id=order["id"])
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("facilitator", password=uuid.uuid4().hex, is_staff=True))
    token = customer_client.cookies["csrftoken"].value
    return {
        "/": customer_client.get("/"),
        "cake page": customer_client.get("/cakes/strawberry-shortcake/"),
        "kitchen": customer_client.get("/kitchen/"),
        "timeline": customer_client.get("/timeline/"),
        "invoice": customer_client.get("/invoices/INV-000001/"),
        "guide": customer_client.get("/docs/workshop/"),
        "404 page": customer_client.get("/no-such-page/"),
        "api docs": customer_client.get("/api/docs/"),
        "admin login": Client().get("/admin/login/"),
        "workshop": staff.get("/workshop/"),
        "GET /api/me/": customer_client.get("/api/me/"),
        "POST /api/orders/": customer_client.order(uuid.uuid4()),
        "API problem": customer_client.post("/api/orders/", {}, format="json", headers={"X-CSRFToken": token}),
    }


def test_every_page_and_answer_has_a_csp_that_allows_scripts_from_this_origin_only(visited):
    for name, response in visited.items():
        assert response.status_code in (200, 201, 400, 404), name
        policy = csp_of(response)
        assert policy["script-src"] == ["'self'"], (name, policy)
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"], name
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"], name
        assert not any("http" in source for sources in policy.values() for source in sources), name


def test_no_page_has_an_inline_script_or_event_handler(visited):
    for name, response in visited.items():
        if response["Content-Type"].startswith("text/html"):
            html = response.content.decode()
            assert not INLINE_SCRIPT.search(html), (name, INLINE_SCRIPT.search(html))
            assert not EVENT_HANDLER.search(html), (name, EVENT_HANDLER.search(html))


def test_framing_sniffing_and_referrer_headers_on_every_page(visited):
    for name, response in visited.items():
        assert response["X-Frame-Options"] == "DENY", name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert response["Referrer-Policy"] == "same-origin", name
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", name


def test_cookie_flags(cake):
    browser = Client()
    browser.get("/cakes/strawberry-shortcake/")  # a cake page sets both cookies
    customer, csrf = browser.cookies[COOKIE], browser.cookies["csrftoken"]
    assert customer["httponly"] and customer["samesite"] == "Lax"
    assert csrf["samesite"] == "Lax"


def test_swagger_ui_is_served_entirely_from_our_own_origin(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in a for a in assets) and any("swagger-ui.css" in a for a in assets)
    assert any("script" in a for a in assets), "the start-up script is a file too, not inline"
    for asset in assets:
        url = urljoin("http://testserver/api/docs/", asset.replace("&amp;", "&"))
        parts = urlsplit(url)
        assert parts.netloc == "testserver", f"{asset} comes from another origin"
        response = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        assert response.status_code == 200, asset
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(body) > 100, asset


def test_check_deploy_reports_only_the_https_warnings():
    out, err = StringIO(), StringIO()
    call_command("check", "--deploy", stdout=out, stderr=err)
    found = set(re.findall(r"\((\w+\.[A-Z]\d+)\)", out.getvalue() + err.getvalue()))
    # HSTS, the HTTPS redirect and Secure cookies: a LAN demo is served over plain HTTP (see README).
    assert found == {"security.W004", "security.W008", "security.W012", "security.W016"}, found
