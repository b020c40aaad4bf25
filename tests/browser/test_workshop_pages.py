"""The dashboard's learner pages in Chromium: a page link swaps the live part (htmx), the address follows,
and the 3 s poll stays on that page."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth import get_user_model

from bakery.workshop.selectors import PAGE_SIZE
from tests.room import seed_learners

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_page_link_swaps_the_learners_and_the_poll_stays_on_that_page(live_server, open_page, cake):
    from playwright.sync_api import expect

    seed_learners(2 * PAGE_SIZE + 20, cake=cake)
    password = uuid.uuid4().hex
    get_user_model().objects.create_user("facilitator", password=password, is_staff=True)
    desk = open_page(1280, 900)
    desk.goto(live_server.url + "/admin/login/?next=/workshop/")
    desk.fill("#id_username", "facilitator")
    desk.fill("#id_password", password)
    desk.click("input[type=submit]")
    expect(desk).to_have_url(live_server.url + "/workshop/")
    rows = desk.locator("#workshop-learners tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    pages = desk.get_by_test_id("learner-pages")
    expect(pages).to_contain_text(f"Learners 1–{PAGE_SIZE} of {2 * PAGE_SIZE + 20}")
    first = rows.first.get_attribute("data-learner")

    with desk.expect_request(re.compile(r"/workshop/learners/\?page=3$")):
        pages.get_by_role("link", name="3").click()
    expect(pages).to_contain_text(f"Learners {2 * PAGE_SIZE + 1}–{2 * PAGE_SIZE + 20} of")
    expect(rows).to_have_count(20)
    expect(desk).to_have_url(live_server.url + "/workshop/?page=3")
    assert desk.locator(".workshop-qr svg").is_visible()  # a swap of the live part, not a new page
    with desk.expect_request(re.compile(r"/workshop/learners/\?page=3$"), timeout=8_000):
        pass  # the next poll asks for page 3 again
    expect(rows).to_have_count(20)
    assert rows.first.get_attribute("data-learner") != first
    expect(pages.locator("[aria-current=page]")).to_have_text("3")

    # "Reset the whole room": the browser confirms, the page says how far it got.
    desk.once("dialog", lambda dialog: dialog.accept())
    desk.get_by_role("button", name="Reset the whole room").click()
    expect(desk.get_by_test_id("room-reset")).to_have_text(
        f"Reset {2 * PAGE_SIZE + 20} of {2 * PAGE_SIZE + 20} learners: every bakery in the room is empty.")
    expect(desk.locator('[data-total="orders"]')).to_have_text("0")
