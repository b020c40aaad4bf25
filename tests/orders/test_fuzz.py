"""Property-based fuzzing of what a browser or a script can send: no input makes a 5xx, every API error is
problem+json, and a failed request leaves no partial data behind. Form posts go to every path that takes
a form (in odd charsets, multipart or not, with NULs and lone surrogates), and the facilitator's admin
gets list filters, lookups and searches of the same text.

Hypothesis draws bodies (orders that are nearly right, arbitrary JSON, NULs and lone surrogates,
deep nesting, raw bytes), headers (good, reused and broken keys, content types, the tunnel) and
URLs with cookies; a bounded number of examples runs in ``make test``. The Django test client
re-raises any exception a view lets escape, so a would-be 500 fails the property too.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from django.db.models import Count, F, Sum
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from orders.models import IdempotencyRecord, Order, OrderItem, OutboxMessage
from tests.clients import BakeryClient

pytestmark = pytest.mark.django_db

EXAMPLES = 150
FUZZ = hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])

# Text as a hostile client writes it: any code point, with NUL, lone surrogates and markup likely.
odd = st.sampled_from(["\x00", "\ud800", "\udfff", "<script>", "'", '"', "\\", "²", "\u202e", "🍰"])
texts = st.lists(st.one_of(st.characters(exclude_categories=()), odd), max_size=12).map("".join)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-5, 60),
                    st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner,
                                                                                                 max_size=4),
                           max_leaves=16)
cakes = st.one_of(st.sampled_from(["strawberry-shortcake", "lemon-drizzle", "banana-bread"]), texts, json_values)
lines = st.fixed_dictionaries({"cake": cakes, "quantity": st.one_of(st.integers(-2, 55), scalars)},
                              optional={"extra": json_values})
orders = st.fixed_dictionaries({"items": st.one_of(st.lists(lines, max_size=24), json_values)},
                               optional={"note": st.one_of(texts, json_values), "extra": json_values})
bodies = st.one_of(
    orders.map(json.dumps),  # json.dumps writes NUL and lone surrogates as \u escapes, as a script would
    json_values.map(json.dumps),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.binary(max_size=120).map(lambda raw: raw.decode("latin-1")),
    orders.map(json.dumps).map(lambda text: text[: len(text) // 2]),  # cut off mid-way
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=300)
KEYS = [str(uuid.uuid4()) for _ in range(3)]  # a few keys, so retries, replays and mismatches happen
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS).map(lambda k: f'"{k}"'), st.uuids().map(str),
                 header_text, st.none())
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "text/xml",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
requests = st.fixed_dictionaries({
    "method": st.sampled_from(["post", "post", "post", "patch", "put", "delete"]),
    "path": st.sampled_from(["/api/orders/", "/api/orders/", "/api/me/", "/api/orders/1/"]),
    "body": bodies, "key": keys, "content_type": content_types,
    "tunnel": st.sampled_from([None, None, "request-lost", "response-lost", "slow", "nonsense"]),
    "customer": st.integers(0, 1),
})


@pytest.fixture
def room(settings, cake, other_cake):
    """Two customers; the throttles are off (they have tests of their own) so every example reaches
    the parser, the validation and the idempotency layer; the tunnel answers at once."""
    settings.ORDER_THROTTLE_RATE = settings.ORDER_BURST_RATE = "off"
    settings.TUNNEL_HOLD_SECONDS = settings.TUNNEL_SLOW_SECONDS = 0
    customers = [BakeryClient(), BakeryClient()]
    for customer in customers:
        customer.start()
    return customers


def snapshot() -> tuple[int, int, int, int]:
    return (Order.objects.count(), OrderItem.objects.count(), IdempotencyRecord.objects.count(),
            OutboxMessage.objects.count())


def assert_every_order_is_whole():
    """No order without items, no total that is not its items' sum, no cake over 50 in one order."""
    for order in Order.objects.annotate(lines=Count("items"), sum=Sum(F("items__quantity") * F("items__unit_price"))):
        assert order.lines >= 1 and order.total == (order.sum or Decimal(0)), order
    per_cake = OrderItem.objects.values("order", "cake").annotate(n=Sum("quantity"), lines=Count("id"))
    assert all(row["n"] <= 50 and row["lines"] == 1 for row in per_cake)


def assert_answer_is_sound(response, tunnel=None):
    if tunnel == "request-lost" and response.status_code == 504:  # asked for: the tunnel's honest 504
        assert response.json()["type"].endswith("/lost-in-tunnel")
        return
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json", (response.status_code, response.content[:300])
        problem = response.json()
        assert problem["status"] == response.status_code and problem["type"] and problem["title"]


@FUZZ
@given(request=requests)
def test_no_request_to_the_order_api_makes_a_5xx_or_partial_data(room, request):
    client = room[request["customer"]]
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    if request["key"] is not None:
        headers["Idempotency-Key"] = request["key"]
    if request["tunnel"]:
        headers["X-Bakery-Tunnel"] = request["tunnel"]
    before = snapshot()
    response = getattr(client, request["method"])(request["path"], request["body"],
                                                   content_type=request["content_type"], headers=headers)
    assert_answer_is_sound(response, request["tunnel"])
    after = snapshot()
    made_an_order = response.status_code == 201 and response.get("Idempotent-Replayed") != "true" \
        and request["tunnel"] != "request-lost"
    if not made_an_order:
        assert after[:2] == before[:2] and after[3] == before[3], (response.status_code, before, after)
    else:
        assert after[0] == before[0] + 1 and after[3] == before[3] + 1
    assert after[2] - before[2] in (0, 1) and (after[2] == before[2] or made_an_order)
    assert_every_order_is_whole()


def percent_encoded(raw: bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in raw)


PREFIXES = ["/", "/cakes/", "/invoices/", "/invoices/INV-", "/docs/", "/api/", "/api/orders/", "/workshop/learners/",
            "/kitchen/", "/timeline/", "/admin/", "/static/", "/api/schema/", "/api/docs/"]


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), tail=st.one_of(st.binary(max_size=12).map(percent_encoded),
                                                         st.text("0123456789-abcXYZ²_.", max_size=12)),
       query=st.one_of(st.just(""), st.binary(max_size=12).map(lambda raw: "?q=" + percent_encoded(raw))),
       session=st.one_of(st.none(), header_text.filter(lambda text: ";" not in text and "," not in text)),
       htmx=st.booleans())
def test_no_url_or_cookie_makes_a_5xx(cake, prefix, tail, query, session, htmx):
    browser = Client()
    if session is not None:
        browser.cookies["sessionid"] = session
    tail = tail + "/" if tail and not tail.endswith("/") else tail
    response = browser.get(prefix + tail + query, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code < 500
    if prefix.startswith("/api/") and response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"


# --- forms and the admin's list filters ------------------------------------------------------------

FORM_PATHS = ["/reset/", "/compare/start/", "/admin/login/", "/admin/logout/", "/workshop/reset/",
              "/workshop/learners/{learner}/reset/", "/admin/orders/cake/add/",
              "/admin/orders/customer/{learner}/change/", "/admin/password_change/", "/api/problems/", "/api/orders/",
              "/api/me/"]
FIELD_NAMES = ["next", "username", "password", "name", "slug", "price", "position", "page", "label", "q",
               "last_scenario", "idempotency_enabled", "old_password", "new_password1", "_save"]
form_fields = st.lists(st.tuples(st.one_of(st.sampled_from(FIELD_NAMES), texts), texts), max_size=6)
charsets = st.sampled_from([None, "utf-8", "UTF-8", "ascii", "latin-1", "utf-16", "utf-32", "cp1252", "nonsense", ""])
forms = st.fixed_dictionaries({
    "path": st.sampled_from(FORM_PATHS), "fields": form_fields, "charset": charsets,
    "multipart": st.booleans(), "raw": st.booleans(), "token": st.booleans(),
    "who": st.sampled_from(["staff", "learner"]),
})


def percent_encoded_text(text: str) -> str:
    return percent_encoded(text.encode("utf-8", "surrogatepass"))  # a lone surrogate as its (invalid) bytes


def form_body(fields, *, multipart: bool, raw: bool) -> bytes:
    if multipart:
        parts = [b'--BoUnDaRy\r\nContent-Disposition: form-data; name="' + name.encode("utf-8", "surrogatepass")
                 + b'"\r\n\r\n' + value.encode("utf-8", "surrogatepass") + b"\r\n" for name, value in fields]
        return b"".join(parts) + b"--BoUnDaRy--\r\n"
    if raw:  # the text as it is, NULs and all, unescaped
        return "&".join(f"{name}={value}" for name, value in fields).encode("utf-8", "surrogatepass")
    return "&".join(f"{percent_encoded_text(name)}={percent_encoded_text(value)}" for name, value in fields).encode()


def room_state() -> tuple:
    from django.contrib.auth import get_user_model

    from orders.models import Cake, Customer, Event

    return (*snapshot(), Cake.objects.count(), Customer.objects.exclude(last_scenario="").count(),
            Customer.objects.count(), Event.objects.count(), get_user_model().objects.count())


@pytest.fixture
def admin_and_learner(room, django_user_model):
    superuser = django_user_model.objects.create_superuser("facilitator", "f@example.com", uuid.uuid4().hex)
    return superuser, room[0]


@FUZZ
@given(form=forms)
def test_no_form_post_makes_a_5xx_or_partial_data(admin_and_learner, form):
    superuser, learner = admin_and_learner
    if form["who"] == "staff":
        client = Client(enforce_csrf_checks=True)
        client.force_login(superuser)
        client.get("/workshop/")  # the csrftoken cookie
    else:
        client = learner
    fields = list(form["fields"])
    token = client.cookies["csrftoken"].value
    if form["token"]:
        fields.append(("csrfmiddlewaretoken", token))
    content_type = ("multipart/form-data; boundary=BoUnDaRy" if form["multipart"]
                    else "application/x-www-form-urlencoded")
    if form["charset"] is not None:
        content_type += f"; charset={form['charset']}"
    path = form["path"].format(learner=learner.customer_id)
    before = room_state()
    response = client.generic("POST", path, form_body(fields, multipart=form["multipart"], raw=form["raw"]),
                              content_type=content_type, headers={"X-CSRFToken": token} if form["token"] else {})
    assert response.status_code < 500, (path, response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert room_state() == before, (path, response.status_code)
    if path.startswith("/api/") and response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"
    assert_every_order_is_whole()


# Each changelist with the parameters it takes (list filters, lookups on its fields, search, order, page).
CHANGELISTS = {
    "/admin/orders/event/": ["kind", "source", "key", "customer__id__exact", "created_at__gte", "id__in"],
    "/admin/orders/order/": ["status", "idempotent__exact", "idempotency_key", "note", "id__in"],
    "/admin/orders/customer/": ["last_scenario", "label", "idempotency_enabled__exact"],
    "/admin/payments/charge/": ["status", "provider_charge_id", "q"],
    "/admin/orders/idempotencyrecord/": ["scope", "owner", "key"],
    "/admin/orders/cake/": ["q", "slug", "name__contains"],
    "/admin/orders/outboxmessage/": ["task", "dispatched_at__isnull", "last_error"],
    "/admin/payments/invoice/": ["q"],
    "/admin/payments/providercharge/": ["q", "idempotency_key"],
}
COMMON = ["o", "p", "e", "all", "_changelist_filters"]


@FUZZ
@given(data=st.data())
def test_no_admin_list_filter_makes_a_5xx(admin_and_learner, data):
    superuser, _learner = admin_and_learner
    changelist = data.draw(st.sampled_from(sorted(CHANGELISTS)))
    names = st.one_of(st.sampled_from(CHANGELISTS[changelist]), st.sampled_from(COMMON), texts)
    params = data.draw(st.lists(st.tuples(names, texts), min_size=1, max_size=3))
    client = Client()
    client.force_login(superuser)
    query = "&".join(f"{percent_encoded_text(name)}={percent_encoded_text(value)}" for name, value in params)
    response = client.get(f"{changelist}?{query}")
    assert response.status_code < 500, (changelist, query, response.status_code)
