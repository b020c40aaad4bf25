"""The tunnel simulator, driven as a learner drives it: real Chromium, real requests, a real worker.

Every number asserted here is read off the page (the kitchen counters and the timeline), which
htmx refreshes from PostgreSQL; the database is checked too, so the page cannot flatter itself.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from orders.models import Event, Order
from payments.models import Charge, Invoice

pytestmark = [pytest.mark.browser, pytest.mark.worker]

CAKE = "/cakes/strawberry-shortcake/"
SETTLE = 20_000  # ms for the worker to charge and invoice and the kitchen to poll it


def visit(page, shop):
    page.goto(shop.url + CAKE)
    expect(page.locator("#key-short")).not_to_have_text("—")
    return page


def counter(page, name):
    return page.locator(".counter", has=page.locator("dt", has_text=re.compile(f"^{name}$"))).locator("dd")


def expect_kitchen(page, cakes, charges, invoices):
    expect(counter(page, "Cakes baked")).to_have_text(str(cakes), timeout=SETTLE)
    expect(counter(page, "Charges")).to_have_text(str(charges), timeout=SETTLE)
    expect(counter(page, "Invoices")).to_have_text(str(invoices), timeout=SETTLE)


def key_on_page(page) -> str:
    return page.locator("#key-short").get_attribute("data-key")


def into_tunnel(page, mode, *, auto_retry, length=None):
    page.get_by_role("switch", name="Retry automatically").set_checked(auto_retry)
    page.get_by_role("switch", name="Lose connectivity").check()
    page.get_by_label(mode, exact=True).check()
    if length:
        page.get_by_label(length, exact=True).check()


def lost_then_manual_retry(page, mode):
    """Order inside the tunnel, see the phone's error, leave the tunnel, press Retry."""
    into_tunnel(page, mode, auto_retry=False)
    key = key_on_page(page)
    page.get_by_role("button", name="Place order").click()
    retry = page.get_by_role("button", name="Retry", exact=True)
    expect(retry).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("no answer")
    page.get_by_role("switch", name="Lose connectivity").uncheck()
    retry.click()
    expect(page.get_by_role("status")).to_contain_text("confirmed")
    return key


def badges(page, badge):
    return page.locator(f"#timeline .step[data-badge='{badge}']")


def test_response_lost_with_idempotency_bakes_one_cake(shop, open_page):
    page = visit(open_page(), shop)
    key = lost_then_manual_retry(page, "Response lost")

    expect(page.get_by_role("status")).to_contain_text("replay")
    expect_kitchen(page, 1, 1, 1)
    expect(badges(page, "replay")).to_have_count(1)
    expect(badges(page, "response lost")).to_have_count(1)
    expect(page.locator("#timeline .step", has_text="invoice issued")).to_have_count(1, timeout=SETTLE)
    assert page.locator("#timeline .intent").get_attribute("data-key") == key
    assert Order.objects.count() == 1 and Charge.objects.count() == 1 and Invoice.objects.count() == 1


def test_response_lost_without_idempotency_bakes_two(shop, open_page):
    page = visit(open_page(), shop)
    page.get_by_role("switch", name="Idempotency").uncheck()
    expect(page.get_by_role("status")).to_contain_text("Idempotency is off")
    lost_then_manual_retry(page, "Response lost")

    expect_kitchen(page, 2, 2, 2)
    expect(badges(page, "replay")).to_have_count(0)
    expect(badges(page, "another cake!")).to_have_count(1)
    # Both orders went all the way through the back office: two invoices on the diagram.
    expect(page.locator("#timeline .step", has_text="invoice issued")).to_have_count(2, timeout=SETTLE)
    expect(page.locator("#timeline .intent")).to_have_count(1)  # one intent, one key, two cakes
    assert Order.objects.count() == 2 and Invoice.objects.count() == 2


def test_slow_bakery_with_automatic_retries_bakes_one(shop, open_page):
    page = visit(open_page(), shop)
    into_tunnel(page, "Slow bakery", auto_retry=True)
    page.get_by_role("button", name="Place order").click()

    expect(page.locator("#countdown")).to_contain_text("Next attempt in")
    expect(page.get_by_role("status")).to_contain_text("confirmed", timeout=15_000)
    expect_kitchen(page, 1, 1, 1)
    attempts = page.locator("#attempts li")
    assert attempts.count() >= 2, "the client must have given up and retried at least once"
    # The retries met the first attempt still running (409) or finished (replay): never a second order.
    assert badges(page, "conflict").count() + badges(page, "replay").count() >= 1
    assert Order.objects.count() == 1


def test_request_lost_then_retry_needs_no_replay(shop, open_page):
    page = visit(open_page(), shop)
    lost_then_manual_retry(page, "Request lost")

    expect(page.get_by_role("status")).not_to_contain_text("replay")
    expect_kitchen(page, 1, 1, 1)
    expect(badges(page, "request lost")).to_have_count(1)
    expect(badges(page, "replay")).to_have_count(0)
    assert not Event.objects.filter(kind=Event.Kind.REPLAY, source="api").exists()


def test_reload_while_retrying_keeps_one_key_and_one_cake(shop, open_page):
    page = visit(open_page(), shop)
    into_tunnel(page, "Response lost", auto_retry=True, length="Until I switch it off")
    key = key_on_page(page)
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#countdown")).to_be_visible()

    page.reload()
    assert key_on_page(page) == key
    expect(page.get_by_role("status")).to_contain_text("reloaded")
    # Out of the tunnel after the reload; the automatic retry carries on with the same key.
    page.get_by_role("switch", name="Lose connectivity").uncheck()
    expect(page.get_by_role("status")).to_contain_text("confirmed", timeout=15_000)

    expect_kitchen(page, 1, 1, 1)
    assert key_on_page(page) != key, "a confirmed order frees the key; the next order gets a new one"
    assert set(Order.objects.values_list("idempotency_key", flat=True)) == {__import__("uuid").UUID(key)}
    assert set(Event.objects.filter(source__in=["api", "tunnel", "order"]).values_list("key", flat=True)) == {key}


@pytest.mark.parametrize("idempotency, made", [(True, 1), (False, 2)], ids=["idempotency-on", "idempotency-off"])
def test_one_press_in_the_default_tunnel_plays_the_whole_scene(shop, open_page, idempotency, made):
    """The talk's scene by itself: the first answer is lost, the retry comes out of the tunnel, the phone
    shows the confirmed order. Nothing is touched but "Lose connectivity" (and the Idempotency switch)."""
    page = visit(open_page(), shop)
    if not idempotency:
        page.get_by_role("switch", name="Idempotency").uncheck()
        expect(page.get_by_role("status")).to_contain_text("Idempotency is off")
    expect(page.get_by_label("For 1 attempt", exact=True)).to_be_checked()  # the defaults
    expect(page.get_by_label("Response lost", exact=True)).to_be_checked()
    expect(page.get_by_role("switch", name="Retry automatically")).to_be_checked()

    page.get_by_role("switch", name="Lose connectivity").check()
    page.get_by_role("button", name="Place order").click()

    expect(page.get_by_role("status")).to_contain_text("confirmed", timeout=15_000)
    attempts = page.locator("#attempts li")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("in the tunnel (Response lost) · no answer")
    expect(attempts.nth(1)).to_contain_text(f"open road · 201 {'replayed' if idempotency else 'created'}")
    expect_kitchen(page, made, made, made)
    expect(page.locator("#timeline .step", has_text="invoice issued")).to_have_count(made, timeout=SETTLE)
    assert Order.objects.count() == made and Charge.objects.count() == made and Invoice.objects.count() == made
    assert page.get_by_role("switch", name="Lose connectivity").is_checked()  # still on for the next order


def test_three_attempts_in_the_tunnel_fold_into_one_group_that_opens_and_stays_open(shop, open_page):
    page = visit(open_page(), shop)
    into_tunnel(page, "Response lost", auto_retry=True, length="For 3 attempts")
    page.get_by_role("button", name="Place order").click()

    expect(page.get_by_role("status")).to_contain_text("confirmed", timeout=20_000)
    tunnels = [item.get_attribute("data-tunnel") for item in page.locator("#attempts li").all()]
    assert tunnels == ["in", "in", "in", "out"]
    expect_kitchen(page, 1, 1, 1)
    fold = page.locator("#timeline details.fold")
    expect(fold).to_have_count(1)
    expect(fold.locator("summary")).to_contain_text(
        "Attempts 2–3: the layer replayed the stored answer; each answer was lost in the tunnel")
    inside = fold.locator(".step[data-badge='replay']")
    expect(inside.first).to_be_hidden()

    fold.locator("summary").click()
    expect(inside).to_have_count(2)
    expect(inside.first).to_be_visible()
    page.wait_for_timeout(2_500)  # the timeline polls every 2 s: a fresh copy keeps the group open
    expect(page.locator("#timeline details.fold")).to_have_attribute("open", "")
    expect(page.locator("#timeline details.fold .step[data-badge='replay']").first).to_be_visible()


CONTROLS = [
    ("textbox", "Quantity"),
    ("textbox", "Note (optional)"),
    ("button", "Place order"),
    ("switch", "Lose connectivity"),
    ("radio", "Request lost"),
    ("radio", "Response lost"),
    ("radio", "Slow bakery"),
    ("radio", "For 1 attempt"),
    ("radio", "For 3 attempts"),
    ("radio", "Until I switch it off"),
    ("switch", "Retry automatically"),
    ("switch", "Idempotency"),
    ("button", "Reset my bakery"),
]


def _within_width(page, locator, width=390):
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, f"{locator} is cut off: {box}"


def test_phone_viewport_every_control_visible_and_usable(shop, open_page):
    page = visit(open_page(390, 844), shop)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"
    for role, name in CONTROLS:
        control = page.get_by_role("spinbutton" if name == "Quantity" else role, name=name, exact=True)
        expect(control).to_be_visible()
        _within_width(page, control)

    # By keyboard: into the tunnel with a lost request, no automatic retries.
    page.get_by_role("switch", name="Retry automatically").focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("switch", name="Retry automatically")).not_to_be_checked()
    page.get_by_role("switch", name="Lose connectivity").focus()
    page.keyboard.press("Space")
    page.get_by_role("radio", name="Request lost").check()
    page.get_by_role("spinbutton", name="Quantity").fill("2")
    page.get_by_role("button", name="Place order").focus()
    page.keyboard.press("Enter")
    retry = page.get_by_role("button", name="Retry", exact=True)
    expect(retry).to_be_visible()
    _within_width(page, retry)
    page.get_by_role("switch", name="Lose connectivity").focus()
    page.keyboard.press("Space")
    retry.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("confirmed")
    expect_kitchen(page, 2, 1, 1)

    page.get_by_role("button", name="Reset my bakery").click()
    expect(page.locator("#reset-result")).to_contain_text("empty again")
    expect(counter(page, "Cakes baked")).to_have_text("0")
    # Leave a picture of a phone mid-story for the artefact: one lost answer, then the replay.
    lost_then_manual_retry(page, "Response lost")
    expect_kitchen(page, 2, 1, 1)
