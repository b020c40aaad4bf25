"""The kitchen catches fire, in real Chromium against a real `make demo`: the facilitator presses
"PostgreSQL goes down" on the dashboard, a phone orders while it is away, retries with its key on
each 503 and says why, and once PostgreSQL is back exactly one order exists for that key; the
dashboard then shows what the room got.

Screenshots: artifacts/screenshots/kitchen-fire-{panel,dashboard-during,phone-during,phone-after,dashboard-after}.png
"""

from __future__ import annotations

import re

import pytest

from tests.bakery.test_demo import STORY, Demo, serving_demo
from tests.bakery.test_kitchen_fire import demo_database
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = [pytest.mark.worker]

CAKE_PAGE = "/cakes/strawberry-shortcake/"
SECONDS = 5


@pytest.fixture(scope="module")
def demo():
    with serving_demo("bakery-fire-browser-") as running:
        yield running


def set_postgres_on_fire(desk, demo: Demo) -> None:
    """The facilitator logs in through the admin and presses "PostgreSQL goes down" for SECONDS."""
    from playwright.sync_api import expect

    user, password = re.search(r"user '(\w+)'  password '([^']+)'",
                               demo.manage("manage.py", "facilitator_password")).groups()
    desk.set_default_timeout(15_000)
    desk.goto(demo.url + "/workshop/")
    desk.fill("#id_username", user)
    desk.fill("#id_password", password)
    desk.click("input[type=submit]")
    expect(desk).to_have_url(demo.url + "/workshop/")
    panel = desk.get_by_test_id("fire-panel")
    expect(panel.get_by_role("button", name="PostgreSQL goes down")).to_be_enabled()
    panel.locator("input[name=seconds]").fill(str(SECONDS))
    panel.screenshot(path=SCREENSHOTS / "kitchen-fire-panel.png")
    panel.get_by_role("button", name="PostgreSQL goes down").click()
    pressed = f"The kitchen catches fire in 2 s: PostgreSQL goes away for {SECONDS} s."
    expect(desk.get_by_text(pressed)).to_be_visible()
    demo.wait_for(rf"^  {STORY}PostgreSQL went away \(kitchen fire, {SECONDS} s\)$", timeout=10)
    desk.screenshot(path=SCREENSHOTS / "kitchen-fire-dashboard-during.png", full_page=True)


def test_a_phone_ordering_while_postgres_is_down_retries_on_503_and_gets_one_order(demo):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(viewport={"width": 430, "height": 1100}).new_page()
            phone.set_default_timeout(15_000)
            phone.goto(demo.url + CAKE_PAGE)  # the page is open before the fire, as on a learner's phone
            key = phone.input_value("#idempotency-key")

            desk = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            set_postgres_on_fire(desk, demo)

            phone.click("#place-order")
            expect(phone.locator("#status")).to_contain_text(
                "the kitchen's database is not answering (503). It asked to come back in 2 s")
            expect(phone.locator("#attempts")).to_contain_text("503")
            expect(phone.locator("#countdown")).to_contain_text("(same key)")
            phone.screenshot(path=SCREENSHOTS / "kitchen-fire-phone-during.png", full_page=True)

            expect(phone.locator("#status")).to_contain_text("confirmed", timeout=60_000)
            order_id = int(re.search(r"Order #(\d+) confirmed", phone.locator("#status").inner_text()).group(1))
            attempts = phone.locator("#attempts li")
            assert attempts.count() >= 2
            expect(attempts.last).to_contain_text("201 created")
            phone.screenshot(path=SCREENSHOTS / "kitchen-fire-phone-after.png", full_page=True)
            with demo_database(demo) as database:
                orders = database.execute("SELECT id FROM orders_order WHERE idempotency_key = %s", [key]).fetchall()
            assert orders == [(order_id,)]  # one order for the key, however many attempts

            demo.wait_for(rf"^  {STORY}PostgreSQL is back \(\d+ s\); 1 order waited$", timeout=60)
            demo.wait_for(rf"^  {STORY}#{order_id} Strawberry Shortcake ×1: placed → paid → invoiced → notified",
                          timeout=90)
            desk.goto(demo.url + "/workshop/")
            summary = desk.get_by_test_id("fire-summary")
            expect(summary).to_contain_text(f"After the kitchen fire (PostgreSQL, {SECONDS} s")
            expect(summary).to_contain_text("1 order waited for it")
            expect(summary.locator('[data-fire="accepted"]')).to_have_text("1")
            expect(summary.locator('[data-fire="duplicates"]')).to_have_text("0")
            expect(summary.locator('[data-fire="stranded"]')).to_have_text("0")
            expect(summary).to_contain_text("0 still on their way", timeout=30_000)
            desk.wait_for_timeout(300)
            desk.screenshot(path=SCREENSHOTS / "kitchen-fire-dashboard-after.png", full_page=True)
        finally:
            browser.close()
