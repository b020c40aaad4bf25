"""The timeline's words: every label, badge and plain-words line it shows, in tables.

``{…}`` fields are filled in by :mod:`bakery.timeline.story` from the events. Change the copy
here; the interpretation does not need to change with it.
"""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings

from orders.events import Kind

# (name, short name for a phone-wide diagram)
LANES = [
    ("browser", "phone"),
    ("API", "API"),
    ("idempotency layer", "layer"),
    ("order store", "store"),
    ("payment", "pay"),
    ("invoice", "invoice"),
    ("email", "email"),
]

LAB = {
    "break": "lab-1-break-it",
    "fix": "lab-2-fix-it",
    "slow": "lab-3-slow-bakery",
    "worker": "lab-4-crashed-worker",
    "changed": "lab-5-changed-order",
}
DEFAULT_DOCS_URL = "/docs/workshop/"  # docs/workshop.md, served by bakery.guide


def docs_url(anchor: str) -> str:
    return f"{getattr(settings, 'WORKSHOP_DOCS_URL', DEFAULT_DOCS_URL)}#{anchor}"


class Words(NamedTuple):
    """What one arrow says: its label (and the short one for a phone), the lab that explains it,
    its tone ("saved", "baked", "lost", "warn", "error"), its badge and the plain-words line."""

    label: str
    said: str
    lab: str = "fix"
    short: str = ""
    tone: str = ""
    badge: str = ""
    lost: bool = False


REQUEST_ARRIVED = Words("attempt {n}: POST /api/orders/", short="#{n}",
                        said="Attempt {n} left the browser with key {key}… and reached the API.")
REQUEST_LOST = Words("attempt {n}: POST /api/orders/", short="#{n}", lab="break", tone="lost", badge="request lost",
                     lost=True, said="Attempt {n} never reached the bakery: the tunnel swallowed the request. "
                                     "Nothing was baked, so retrying is safe even without a key.")

# What the layer (or, for ``rejected``, the API) decided, drawn as one arrow. {fields} and
# {reason} come from the event.
DECISION_ROWS = {
    Kind.NEW: Words("new key", short="new", badge="new",
                    said="The idempotency layer had never seen this key, so it claimed it and let the order through."),
    Kind.REPLAY: Words("seen it: replay", short="seen", tone="saved", badge="replay",
                       said="Same key, same order, already done: the layer returned the stored answer. "
                            "No new cake, no new charge."),
    Kind.CONFLICT: Words("key still in use", short="busy", lab="slow", tone="saved", badge="conflict",
                         said="The first attempt with this key was still being baked, so this one waited, "
                              "then got 409 with Retry-After instead of baking a second cake."),
    Kind.MISMATCH: Words("same key, other order", short="other", lab="changed", tone="error", badge="mismatch",
                         said="This key was first used for a different order ({fields} differ). "
                              "The bakery refused with 422 rather than guess."),
    Kind.UNGUARDED: Words("switched off: no check", short="off", lab="break", tone="warn", badge="idempotency off",
                          said="Idempotency is off, so the API did not look at the key and went straight to the "
                               "kitchen."),
    Kind.REJECTED: Words("400 bad request", short="400", tone="error", badge="rejected",
                         said="The API refused the request: {reason}"),
}

ORDER_STORED = Words("order #{order} stored", short="#{order}", tone="baked", badge="baked",
                     said="Order #{order} was written to PostgreSQL with its key: {cakes} cake(s) to bake.")
ORDER_STORED_AGAIN = ORDER_STORED._replace(
    lab="break", tone="error", badge="another cake!",
    said="A second order for the same intent: {cakes} more cake(s) baked. This is the tunnel bug.")
KEY_RELEASED = Words("handler failed: key released", tone="warn",
                     said="The order failed and rolled back, key included, so a retry can succeed.")

# The answer each decision sends back to the browser, and what it means once it arrives.
ANSWERS = {
    Kind.NEW: Words("201 Created", said="The browser got its answer: the order is confirmed."),
    Kind.UNGUARDED: Words("201 Created", said="The browser got its answer: the order is confirmed."),
    Kind.REPLAY: Words("201 (Idempotent-Replayed)",
                       said="The browser got the first attempt's answer, byte for byte, marked as a replay."),
    Kind.CONFLICT: Words("409 + Retry-After", said="The browser was told to come back in a moment with the same key."),
    Kind.MISMATCH: Words("422 mismatch", said="The browser was told the key belongs to a different order."),
}
ANSWER_LOST = Words("{answer}", short="{short}", lab="break", tone="lost", badge="response lost", lost=True,
                    said="The bakery answered, but the answer was lost in the tunnel. The phone "
                         "cannot tell whether the order went through.")
ANSWER_TOO_LATE = Words("{answer}", short="{short}", lab="slow", tone="lost", badge="too late", lost=True,
                        said="The answer came back, but the browser had already given up waiting and retried.")

# Identical attempts between the first and the last fold into one line:
# "Attempts 3–7: the layer replayed the stored answer; each answer was lost in the tunnel".
FOLD = "Attempts {first}–{last}: {did}"
FOLD_DECISIONS = {
    Kind.NEW: "the layer took each as a new key",
    Kind.REPLAY: "the layer replayed the stored answer",
    Kind.CONFLICT: "the first attempt still held the key, so each got 409 and was told to come back",
    Kind.MISMATCH: "each was refused: the key belongs to a different order",
    Kind.UNGUARDED: "idempotency was off, so each one baked another order",
    Kind.REJECTED: "the API refused each as a bad request",
}
FOLD_LOST_REQUEST = "each request was lost in the tunnel before it reached the bakery"
FOLD_ANSWERS = {
    ANSWER_LOST: "each answer was lost in the tunnel",
    ANSWER_TOO_LATE: "each answer came after the phone had given up",
}

# The Celery steps. {name} is the step's source (payment, invoice, email).
STEP_ROWS = {
    Kind.DEDUPE: Words("{name}: duplicate skipped", short="skip", lab="worker", tone="saved", badge="dedupe",
                       said="A repeated {name} request reached {who}, which saw the work already done for this "
                            "order's key and did nothing again."),
    Kind.RETRY: Words("{name}: will retry", short="retry", lab="worker", tone="warn", badge="retry",
                      said="The {name} step hit a problem ({reason}) and will try again with backoff, "
                           "with the same key."),
    Kind.FAILED: Words("{name}: failed", short="fail", lab="worker", tone="error", badge="failed",
                       said="The {name} step gave up: {reason}."),
    Kind.RESUMED: Words("{name}: resumed by the completer", short="resume", lab="worker", tone="warn",
                        badge="resumed",
                        said="Nothing had happened to this order for {quiet} s, so the completer sent the {name} "
                             "step again (resumption {attempt}). If the first one got through after all, the step "
                             "will see its key and skip."),
}
# What a step says when it could not say why it retried or failed.
STEP_REASON_UNKNOWN = {Kind.RETRY: "transient", Kind.FAILED: "see the order"}
STEP_DONE = {
    "payment": Words("payment captured", short="paid", lab="worker", tone="baked", badge="done",
                     said="The Celery worker charged the card once, with the order's key, so the provider "
                          "would refuse to charge it twice."),
    "invoice": Words("invoice issued", short="INV", lab="worker", tone="baked", badge="done",
                     said="The worker issued the invoice, numbered once and only once for this order."),
    "email": Words("confirmation sent", short="sent", lab="worker", tone="baked", badge="done",
                   said="The worker sent the confirmation email."),
}
STEP_DONE_OTHER = Words("{name} done", short="done", lab="worker", tone="baked", badge="done",
                        said="The {name} step finished.")

SUMMARIES = {
    "tunnel bug": "{attempts} attempts baked {orders} orders for one intent: the tunnel bug.",
    "replayed": "{attempts} attempts, one order: the idempotency layer replayed the answer {replays}×.",
    "one order": "{attempts} attempt{s}, one order.",
    "nothing yet": "{attempts} attempt{s}, nothing baked yet.",
}

# --- The demo terminal (bakery/timeline/feed.py): one line for each thing a person cares about. --
# {who} is the order ("#58") or, before there is one, the key ("key 1a2b3c4d"); {step} is the
# back-office step (payment, invoice, email).
FEED_FULFILLED = "{who} {items}: placed → paid → invoiced → notified ({seconds:.1f} s)"
FEED_ITEM = "{name} ×{quantity}"
FEED_BAKED_AGAIN = "{who} baked again for the key of {first}: idempotency is off"
FEED_DECLINED = "{who} payment declined ({reason})"
FEED_PROVIDER_DEDUPE = "{who} payment step: duplicate charge refused by the provider, the first one stands"
FEED = {
    ("api", Kind.REPLAY): "{who} replayed to a retry",
    ("api", Kind.CONFLICT): "{who} still being baked when a retry came: 409, come back in a moment",
    ("api", Kind.MISMATCH): "{who}: the key came back with a different order ({fields}): 422",
    ("api", Kind.REJECTED): "a request was refused: {reason}",
    ("api", Kind.RELEASED): "{who}: the order failed and rolled back, so the key is free again",
    ("tunnel", Kind.LOST_RESPONSE): "{who} answer lost in the tunnel",
    ("tunnel", Kind.LOST_REQUEST): "{who}: request lost in the tunnel, nothing baked",
    ("step", Kind.DEDUPE): "{who} {step} step: duplicate delivery skipped",
    ("step", Kind.RETRY): "{who} {step} step will retry: {reason}",
    ("step", Kind.FAILED): "{who} {step} step failed: {reason}",
    ("step", Kind.RESUMED): "{who} {step} step resumed by the completer, {quiet} s without a sign of life",
}
