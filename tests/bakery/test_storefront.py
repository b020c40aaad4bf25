"""The storefront without a browser: catalogue, cake page, styled 404, kitchen, reset and the timeline."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import xml.dom.minidom

import pytest
from django.conf import settings
from django.core.management import call_command

from bakery.timeline.story import build_timeline
from orders.models import Customer, Event, Order

FIXTURE = settings.BASE_DIR / "orders" / "fixtures" / "cakes.json"
CAKES = [row["fields"] for row in json.loads(FIXTURE.read_text())]


@pytest.fixture
def catalogue(db):
    call_command("loaddata", "cakes", verbosity=0)


def test_every_cake_has_its_own_hand_drawn_picture():
    pictures = [settings.BASE_DIR / "static" / cake["image"] for cake in CAKES]
    for picture in pictures:
        document = xml.dom.minidom.parse(str(picture))  # well-formed SVG
        assert document.documentElement.tagName == "svg"
        assert document.getElementsByTagName("title"), f"{picture.name} needs a <title> for screen readers"
    digests = {hashlib.sha256(picture.read_bytes()).hexdigest() for picture in pictures}
    assert len(digests) == len(CAKES) >= 8


def test_catalogue_lists_the_cakes_strawberry_shortcake_first(client, catalogue):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    positions = [html.index(cake["name"]) for cake in CAKES]
    assert positions[0] == min(positions), "the world-famous Strawberry Shortcake comes first"
    for cake in CAKES:
        assert f'href="/cakes/{cake["slug"]}/"' in html
        assert f"/static/{cake['image']}" in html


def test_cake_page_has_the_simulator_controls_and_client_timeout(client, catalogue, settings):
    settings.TUNNEL_CLIENT_TIMEOUT_SECONDS = 1.5
    html = client.get("/cakes/strawberry-shortcake/").content.decode()
    for label in [
        "Quantity",
        "Note",
        "Place order",
        "Lose connectivity",
        "Request lost",
        "Response lost",
        "Slow bakery",
        "Idempotency",
        "Reset my bakery",
        "Cakes baked",
        "Charges",
        "Invoices",
    ]:
        assert label in html
    assert 'data-timeout="1.5"' in html
    assert "js/htmx.min.js" in html and "js/simulator.js" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_unknown_cake_gets_the_styled_404(client, catalogue):
    response = client.get("/cakes/no-such-cake/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "We couldn't find that" in html and "css/bakery.css" in html and "/cakes/no-such-cake/" in html


def test_kitchen_is_a_partial_for_htmx_and_a_page_without_it(client, catalogue):
    page = client.get("/kitchen/").content.decode()
    partial = client.get("/kitchen/", headers={"HX-Request": "true"}).content.decode()
    assert "<html" in page and "<html" not in partial
    assert 'id="kitchen"' in partial and 'hx-get="/kitchen/"' in partial and 'href="/kitchen/"' in partial


def test_reset_is_csrf_protected_and_clears_my_bakery_only(customer_client, cake, other_cake):
    mine = customer_client.order(uuid.uuid4())
    assert mine.status_code == 201
    from tests.clients import BakeryClient

    neighbour = BakeryClient()
    neighbour.start()
    assert neighbour.order(uuid.uuid4()).status_code == 201

    assert customer_client.post("/reset/").status_code == 403  # no CSRF token, nothing deleted
    assert Order.objects.count() == 2

    token = customer_client.cookies["csrftoken"].value
    response = customer_client.post("/reset/", {"csrfmiddlewaretoken": token}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and response["HX-Trigger"] == "bakery:reset"
    assert list(Order.objects.values_list("customer_id", flat=True)) == [uuid.UUID(neighbour.customer_id)]
    assert not Event.objects.filter(customer_id=customer_client.customer_id).exists()


@pytest.mark.parametrize(("next_value", "lands_on"), [
    ("/kitchen/", "/kitchen/"),
    ("/compare/?scene=a", "/compare/?scene=a"),
    ("0", "/"),                        # a bare word is not a view name to look up
    ("cake-list", "/"),
    ("kitchen", "/"),
    ("https://evil.example/", "/"),    # nor another site
    ("//evil.example/", "/"),
    ("", "/"),
])
def test_reset_sends_the_visitor_back_to_a_page_of_this_site_only(customer_client, next_value, lands_on):
    token = customer_client.cookies["csrftoken"].value
    response = customer_client.post("/reset/", {"csrfmiddlewaretoken": token, "next": next_value})
    assert response.status_code == 302 and response["Location"] == lands_on


@pytest.fixture
def instant_tunnel(settings):
    settings.TUNNEL_HOLD_SECONDS = 0
    settings.TUNNEL_SLOW_SECONDS = 0


def test_timeline_shows_a_lost_answer_then_a_replay(customer_client, cake, instant_tunnel):
    key = uuid.uuid4()
    assert customer_client.order(key, headers={"X-Bakery-Tunnel": "response-lost"}).status_code == 201
    assert customer_client.order(key).headers["Idempotent-Replayed"] == "true"

    customer = Customer.objects.get(pk=customer_client.customer_id)
    [intent] = build_timeline(customer=customer)
    assert intent.key == str(key) and len(intent.attempts) == 2 and intent.orders == 1 and intent.replays == 1
    assert [row.badge for row in intent.rows if row.badge] == ["new", "baked", "response lost", "replay"]
    html = customer_client.get("/timeline/").content.decode()
    assert 'data-badge="replay"' in html and "#lab-2-fix-it" in html


def test_timeline_marks_the_second_cake_when_idempotency_is_off(customer_client, cake, instant_tunnel):
    customer_client.patch(
        "/api/me/",
        {"idempotency": False},
        format="json",
        headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value},
    )
    key = uuid.uuid4()
    customer_client.order(key, headers={"X-Bakery-Tunnel": "response-lost"})
    customer_client.order(key)

    customer = Customer.objects.get(pk=customer_client.customer_id)
    [intent] = build_timeline(customer=customer)
    assert intent.orders == 2 and intent.replays == 0
    assert [row.badge for row in intent.rows].count("another cake!") == 1
    assert "the tunnel bug" in intent.summary


def test_timeline_shows_a_lost_request_without_a_replay(customer_client, cake, instant_tunnel):
    key = uuid.uuid4()
    assert customer_client.order(key, headers={"X-Bakery-Tunnel": "request-lost"}).status_code >= 500
    assert customer_client.order(key).status_code == 201

    [intent] = build_timeline(customer=Customer.objects.get(pk=customer_client.customer_id))
    assert intent.attempts[0].lost_request and intent.orders == 1 and intent.replays == 0


def test_seven_attempts_fold_the_identical_middle_into_one_group_that_opens(customer_client, cake, instant_tunnel):
    """Seven attempts through a tunnel that lasts: the first is new, 2-6 replay and lose their answer
    exactly alike, the seventh comes out of the tunnel. The middle folds; the ends stay unfolded."""
    key = uuid.uuid4()
    for _ in range(6):
        assert customer_client.order(key, headers={"X-Bakery-Tunnel": "response-lost"}).status_code == 201
    assert customer_client.order(key).headers["Idempotent-Replayed"] == "true"

    [intent] = build_timeline(customer=Customer.objects.get(pk=customer_client.customer_id))
    assert len(intent.attempts) == 7
    folds = [entry for entry in intent.entries if entry.folded]
    assert [(fold.first, fold.last) for fold in folds] == [(2, 6)]
    assert folds[0].summary == ("Attempts 2–6: the layer replayed the stored answer; "
                                "each answer was lost in the tunnel")
    assert len(folds[0].rows) == 5 * 3  # each: arrived, replayed, answer lost; all still there, inside
    unfolded = [entry.label for entry in intent.entries if not entry.folded]
    assert "attempt 1: POST /api/orders/" in unfolded and "attempt 7: POST /api/orders/" in unfolded

    html = customer_client.get("/timeline/").content.decode()
    assert html.count("<details") == 1
    assert re.search(r'<details class="fold"[^>]*data-attempts="2-6"[^>]*>\s*<summary[^>]*>.*Attempts 2–6: the layer '
                     r"replayed the stored answer; each answer was lost in the tunnel", html, re.S)
    assert "<details open" not in html  # folded until the reader opens it


def test_different_attempts_do_not_fold(customer_client, cake, instant_tunnel):
    """Lost, lost, then a request that got its answer: nothing in the middle is alike enough to fold."""
    key = uuid.uuid4()
    customer_client.order(key, headers={"X-Bakery-Tunnel": "request-lost"})
    customer_client.order(key, headers={"X-Bakery-Tunnel": "response-lost"})
    customer_client.order(key, headers={"X-Bakery-Tunnel": "response-lost"})
    customer_client.order(key)

    [intent] = build_timeline(customer=Customer.objects.get(pk=customer_client.customer_id))
    assert len(intent.attempts) == 4
    assert not [entry for entry in intent.entries if entry.folded]  # 2 is new, 3 a replay: not alike
