"""The Content-Security-Policy, as Chromium enforces it: every page still works, nothing is refused, and
the API docs render with no network but the bakery's own (a room without internet)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from orders.models import Order

pytestmark = pytest.mark.browser


@pytest.fixture
def bakery(live_server, settings):
    settings.TUNNEL_HOLD_SECONDS = 0
    call_command("loaddata", "cakes", verbosity=0)
    return live_server.url


@pytest.fixture
def watched(open_page, bakery):
    """A page whose console is watched for CSP refusals, and whose requests may only go to the bakery."""
    refusals: list[str] = []
    elsewhere: list[str] = []
    own = urlsplit(bakery).netloc

    def open_():
        page = open_page()

        def on_console(message):
            if message.type == "error" and ("Content Security Policy" in message.text or "Refused to" in message.text):
                refusals.append(message.text)

        page.on("console", on_console)

        def route(route):
            if urlsplit(route.request.url).netloc == own:
                route.continue_()
            else:  # no internet in the room
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", route)
        return page

    yield open_
    assert refusals == [], f"the Content-Security-Policy refused: {refusals}"
    assert elsewhere == [], f"a page reached beyond the bakery: {elsewhere}"


def test_the_shop_works_under_the_policy(watched, bakery):
    page = watched()
    page.goto(bakery + "/")
    page.get_by_role("link", name="Strawberry Shortcake").first.click()
    expect(page.locator("#key-short")).not_to_have_text("—")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("status")).to_contain_text("confirmed")
    expect(page.locator(".counter[data-counter='cakes'] dd")).to_have_text("1")  # htmx polled the kitchen
    for path in ("/kitchen/", "/timeline/", "/docs/workshop/", "/no-such-page/"):
        page.goto(bakery + path)
    assert Order.objects.count() == 1


def test_swagger_ui_renders_offline_from_our_own_origin(watched, bakery):
    page = watched()
    page.goto(bakery + "/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Freed's Bakery order API")
    expect(page.locator(".opblock-summary-path", has_text="/api/orders/").first).to_be_visible()


def test_the_facilitator_dashboard_and_its_confirmation_work_under_the_policy(watched, bakery, cake):
    password = uuid.uuid4().hex
    get_user_model().objects.create_user("facilitator", password=password, is_staff=True)
    page = watched()
    page.goto(bakery + "/workshop/")
    page.fill("#id_username", "facilitator")
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Join the bakery")).to_be_visible()

    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Reset the whole room").click()
    expect(page.get_by_role("heading", name="Join the bakery")).to_be_visible()
    assert asked and "Empty every learner" in asked[0], "the confirmation came from static/js/page.js"
