"""Both worlds side by side: the compare page plays the tunnel scene on two phones at once, in Chromium,
with a real worker charging and invoicing. Every number is read off the page and checked in PostgreSQL."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from orders.models import Customer
from payments.selectors import counts_by_customer

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SETTLE = 25_000  # ms for both phones, the worker and the ending


def kitchen(page, phone):
    return page.locator(f".mini-kitchen[data-phone={phone}]")


def counter(page, phone, name):
    return kitchen(page, phone).locator(".counter", has=page.locator("dt", has_text=re.compile(f"^{name}$"))).locator(
        "dd")


def expect_counts(page, phone, n):
    for name in ("Cakes baked", "Charges", "Invoices"):
        expect(counter(page, phone, name)).to_have_text(str(n), timeout=SETTLE)


def phone(page, name):
    return page.locator(f".phone[data-phone={name}]")


def play_the_scene(page):
    """The defaults (Lose connectivity on, Response lost, For 1 attempt) and one press of the one button."""
    expect(page.get_by_role("switch", name="Lose connectivity")).to_be_checked()
    expect(page.get_by_label("Response lost", exact=True)).to_be_checked()
    expect(page.get_by_label("For 1 attempt", exact=True)).to_be_checked()
    page.get_by_role("button", name="Place order on both phones").click()
    for name in ("with", "without"):
        expect(phone(page, name).locator(".phone-status")).to_contain_text("confirmed", timeout=SETTLE)
    expect(page.locator("#contrast")).to_contain_text(
        "With idempotency: 1 cake, 1 charge, 1 invoice. Without: 2, 2, 2.", timeout=SETTLE)


def counts_in_the_database(page) -> dict:
    phones = {customer.label.rsplit("· ", 1)[1]: customer.pk
              for customer in Customer.objects.filter(label__contains="· ")}
    counts = counts_by_customer(phones.values())
    return {name: (counts[pk].cakes, counts[pk].charges, counts[pk].invoices) for name, pk in phones.items()}


def test_one_button_plays_the_tunnel_on_both_phones_and_ends_with_the_contrast(shop, open_page):
    page = open_page(1280, 900)
    page.goto(shop.url + "/cakes/strawberry-shortcake/")
    page.get_by_role("link", name="Compare with and without idempotency").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Strawberry Shortcake, with and without idempotency")
    with_box, without_box = phone(page, "with").bounding_box(), phone(page, "without").bounding_box()
    assert with_box["x"] + with_box["width"] <= without_box["x"], "side by side at desktop width"

    play_the_scene(page)

    expect_counts(page, "with", 1)
    expect_counts(page, "without", 2)
    # Each phone its own attempts and its own timeline: one lost answer, then the retry out of the tunnel.
    for name, outcome in (("with", "201 replayed"), ("without", "201 created")):
        attempts = phone(page, name).locator(".attempts li")
        expect(attempts).to_have_count(2)
        expect(attempts.nth(0)).to_contain_text("in the tunnel (Response lost) · no answer")
        expect(attempts.nth(1)).to_contain_text(f"open road · {outcome}")
    expect(page.locator("#timeline-with .step[data-badge='replay']")).to_have_count(1)
    expect(page.locator("#timeline-with .step[data-badge='another cake!']")).to_have_count(0)
    expect(page.locator("#timeline-without .step[data-badge='another cake!']")).to_have_count(1)
    assert counts_in_the_database(page) == {"with idempotency": (1, 1, 1), "without idempotency": (2, 2, 2)}

    # Again: each press starts both bakeries empty, so the ending is this run's.
    page.get_by_role("button", name="Place order on both phones").click()
    expect(page.locator("#contrast")).not_to_contain_text("With idempotency:")
    expect(page.locator("#contrast")).to_contain_text(
        "With idempotency: 1 cake, 1 charge, 1 invoice. Without: 2, 2, 2.", timeout=SETTLE)
    assert counts_in_the_database(page) == {"with idempotency": (1, 1, 1), "without idempotency": (2, 2, 2)}


def test_at_390_px_the_phones_stack_and_the_counters_stay_at_the_top(shop, open_page):
    page = open_page(390, 844)
    page.goto(shop.url + "/cakes/strawberry-shortcake/compare/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"
    with_box, without_box = phone(page, "with").bounding_box(), phone(page, "without").bounding_box()
    assert without_box["y"] >= with_box["y"] + with_box["height"], "the phones stack"
    assert abs(without_box["x"] - with_box["x"]) < 1

    play_the_scene(page)
    expect_counts(page, "with", 1)
    expect_counts(page, "without", 2)

    # Scroll to the bottom of the second phone's timeline: both kitchens and the ending are still on screen.
    page.locator("#timeline-without .intent").last.scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    assert page.evaluate("window.scrollY") > 800
    for element in (kitchen(page, "with"), kitchen(page, "without"), page.locator("#contrast")):
        box = element.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844, f"{element} scrolled out of sight: {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
