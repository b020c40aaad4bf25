"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server, with
a real Celery worker, so what the page shows comes from real requests, charges and invoices."""

from __future__ import annotations

import os
import re

import pytest
from django.core.management import call_command

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread, which trips Django's guard against
    # ORM calls from async code; the tests' ORM calls are ordinary synchronous ones (Playwright's
    # documented advice). The flag lives only as long as the browser does.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def tunnel_settings(settings):
    """Short tunnel timings: the live server runs in this process, so these apply to it."""
    settings.TUNNEL_CLIENT_TIMEOUT_SECONDS = 1
    settings.TUNNEL_HOLD_SECONDS = 2
    settings.TUNNEL_SLOW_SECONDS = 2.5
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.5
    settings.CLIENT_RETRY_BASE_SECONDS = 0.4
    return settings


@pytest.fixture
def shop(live_server, tunnel_settings, celery_worker):
    """The live bakery with its catalogue and a worker that really charges and invoices."""
    call_command("loaddata", "cakes", verbosity=0)
    return live_server


@pytest.fixture
def open_page(chromium, request):
    """Open a page in a fresh browser context (a new customer) at a window size; the test's final
    page is saved to artifacts/screenshots/<test>.png, and a JavaScript error fails the test."""
    contexts = []
    errors: list[str] = []

    def open_(width: int = 1280, height: int = 900):
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    try:
        if contexts and contexts[-1].pages:
            last = contexts[-1].pages[-1]
            last.wait_for_timeout(300)  # let a polling swap land, so the picture is whole
            last.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        for context in contexts:
            context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
