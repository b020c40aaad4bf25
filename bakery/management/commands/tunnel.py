"""`manage.py tunnel`: drive the tunnel scenario over real HTTP against a running bakery.

One learner (or ``--participants K`` learners at once, each with its own cookie jar and so its own
customer, pressing within ``--spread`` seconds of the start) does what a phone in a tunnel does:

1. ``GET /api/me/`` for the csrftoken and customer cookies, and ``PATCH /api/me/`` for the switch when
   it must change (a learner whose switch is already right becomes a customer with its first order,
   as a phone does);
2. the first attempts of one order intent go *through the tunnel* (header ``X-Bakery-Tunnel``) and
   are really aborted when the client timeout fires, exactly like the browser's fetch timeout.
   ``--tunnel-length`` says how many, as the simulator page's choice does: ``1`` (the default), ``3``,
   or ``forever`` (every attempt: the learner never drives out);
3. up to ``--retries`` retries with the same Idempotency-Key, with the simulator page's retry policy
   (``CLIENT_RETRY_*``: exponential backoff with jitter), honouring the ``Retry-After`` of a ``409``,
   ``429`` or ``503`` as the shortest wait (bakery/client.py, ``RetryPolicy``);
4. it waits for the back office (payment, invoice, email) and counts cakes, charges and invoices.

``--expect one|many`` turns it into a smoke test: the command exits 1 when any learner's counts
differ. Nothing here touches the database: the bakery is only reached over HTTP. A read of a
learner's orders that fails is retried; one that still fails leaves that learner's counts
"unknown" (never 0) and the command exits 3, saying why.

The learners, this command and the bakery share the machine's cores: in a big room the figures
are the whole machine's, not the bakery's alone.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bakery.client import (
    RETRY_AFTER_STATUSES,
    OrderClient,
    RetryPolicy,
    is_replay,
    order_body,
    percentile,
)
from bakery.storefront.tunnel import HEADER, MODES, SLOW

SETTLED = {"notified", "payment_failed"}
READ_TRIES = 5  # a read of the orders that fails is tried this many times before its counts are unknown
UNREADABLE = 3  # the exit status when some learner's orders could not be read
PRESS_SPREAD_SECONDS = 1.5  # a room told "press now" presses within this many seconds
# The tunnel's length in attempts, as on the simulator page; None: until it is switched off.
TUNNEL_LENGTHS = {"1": 1, "3": 3, "forever": None}


@dataclass(frozen=True)
class Scenario:
    url: str
    mode: str
    idempotency: bool
    tunnel_length: int | None
    retries: int
    timeout: float
    backoff: RetryPolicy
    settle: float
    server_hold: float
    spread: float
    cake: str
    expect: str | None

    def in_tunnel(self, attempt: int) -> bool:
        return self.tunnel_length is None or attempt <= self.tunnel_length

    @property
    def tunnel_words(self) -> str:
        if self.tunnel_length is None:
            return "until switched off"
        return f"for {self.tunnel_length} attempt{'s' if self.tunnel_length != 1 else ''}"


@dataclass
class Attempt:
    number: int
    started: float  # seconds since the learner's first attempt
    tunnel: bool
    outcome: str
    status: int | None = None
    seconds: float = 0.0

    @property
    def short(self) -> str:
        if self.status is None:
            return "timeout" if self.outcome.startswith("gave up") else "error"
        return f"{self.status}{'r' if 'replayed' in self.outcome else ''}"


@dataclass
class Learner:
    number: int
    label: str = ""
    customer: str = ""
    key: str = ""
    began: float = 0.0  # time.monotonic() of attempt 1
    first_sent: float | None = None  # attempt 1, in seconds from the start of the room
    attempts: list[Attempt] = field(default_factory=list)
    answered_after: float | None = None  # first 2xx answer, from the first attempt
    settled_after: float | None = None
    orders: list[dict] = field(default_factory=list)
    error: str = ""
    unread: str = ""  # why the orders could not be read: the counts are unknown, not 0

    @property
    def cakes(self) -> int:
        return sum(item["quantity"] for order in self.orders for item in order["items"])

    @property
    def charges(self) -> int:
        return sum(1 for order in self.orders if (order.get("payment") or {}).get("status") == "succeeded")

    @property
    def invoices(self) -> int:
        return sum(1 for order in self.orders if order.get("invoice"))

    @property
    def emails(self) -> int:
        return sum(order.get("emails_sent", 0) for order in self.orders)

    def count(self, value: int) -> str:
        return "unknown" if self.unread else str(value)

    @property
    def timeouts_outside(self) -> int:
        """Attempts made outside the tunnel that got no answer in time: none, in a bakery that keeps up."""
        return sum(1 for attempt in self.attempts if not attempt.tunnel and attempt.status is None)

    def meets(self, expect: str | None) -> bool:
        if self.error or self.unread:
            return False
        if expect == "one":
            return (self.cakes, self.charges, self.invoices) == (1, 1, 1)
        if expect == "many":
            return self.cakes > 1
        return True


class Room:
    """The learners still placing their order. Their reads of the back office wait until none is, so
    that a room's polling never takes the bakery's cores from the room's own orders (in a room of 200
    the first reads came while retries were still being answered, and took a third of the web
    processes' time). A learner alone reads as soon as its order is answered."""

    def __init__(self, participants: int):
        self.placing = participants
        self.all_answered = asyncio.Event()
        if participants <= 0:
            self.all_answered.set()

    def answered(self) -> None:
        self.placing -= 1
        if self.placing <= 0:
            self.all_answered.set()


async def run_learner(number: int, scenario: Scenario, say, poll_seconds: float = 0.25,
                      press_at: float = 0.0, room: Room | None = None) -> Learner:
    """One learner: a session, then the order pressed at ``press_at`` (time.monotonic()) or as soon as
    the session is ready, then, once the room has its answers, the back office waited for."""
    learner = Learner(number)
    room = room or Room(1)
    async with OrderClient(scenario.url) as client:
        try:
            try:
                await client.start(idempotency=scenario.idempotency, as_visitor=True)
                learner.label, learner.customer = client.label, client.customer_id
            except (httpx.HTTPError, KeyError, ValueError) as error:
                learner.error = f"could not start a session: {error}"
                return learner
            say(learner, f"{learner.label} (customer {learner.customer[:8]}) idempotency "
                         f"{'on' if scenario.idempotency else 'off'}")
            await asyncio.sleep(max(0.0, press_at - time.monotonic()))
            await place_order(client, learner, scenario, say)
        finally:
            room.answered()
        await room.all_answered.wait()
        await wait_for_back_office(client, learner, scenario, say, poll_seconds)
    return learner


async def place_order(client: OrderClient, learner: Learner, scenario: Scenario, say) -> None:
    learner.key = str(uuid.uuid4())  # one key per order intent, the same on every retry
    body = order_body(scenario.cake, note=f"tunnel CLI, learner {learner.number}")
    start = learner.began = time.monotonic()
    for number in range(1, scenario.retries + 2):
        tunnel = scenario.in_tunnel(number)
        began = time.monotonic()
        attempt = Attempt(number, began - start, tunnel, "")
        retry_after = None
        try:
            # A hard deadline for the whole exchange: when it fires the request is cancelled and
            # its connection closed, so the bakery really never gets to answer this attempt.
            async with asyncio.timeout(scenario.timeout):
                response = await client.order(learner.key, body, {HEADER: scenario.mode} if tunnel else None)
        except TimeoutError:
            attempt.outcome = f"gave up after {scenario.timeout:.2f} s: no answer"
        except httpx.TransportError as error:
            attempt.outcome = f"connection failed: {type(error).__name__}"
        else:
            attempt.status = response.status_code
            attempt.outcome = describe(response)
            retry_after = response.headers.get("Retry-After")
        attempt.seconds = time.monotonic() - began
        learner.attempts.append(attempt)
        where = f"through the tunnel ({scenario.mode})" if number == 1 else (
            f"retry in the tunnel ({scenario.mode})" if tunnel else "retry, same key")
        say(learner, f"+{attempt.started:5.2f} s  attempt {number} {where:<32} {attempt.outcome}")
        if attempt.status is not None and 200 <= attempt.status < 300:
            learner.answered_after = time.monotonic() - start
            return
        if attempt.status is not None and attempt.status < 500 and attempt.status not in RETRY_AFTER_STATUSES:
            return  # 400/403/422: the same request would be refused again
        if number <= scenario.retries:
            await asyncio.sleep(scenario.backoff.wait(number, attempt.status, retry_after))


def describe(response: httpx.Response) -> str:
    if response.status_code == 201:
        order = response.json()
        replayed = is_replay(response.headers)
        return f"201 order #{order['id']} ({'replayed: no new cake' if replayed else 'new'})"
    try:
        detail = response.json().get("title") or response.text[:80]
    except ValueError:
        detail = response.text[:80]
    retry_after = response.headers.get("Retry-After")
    return f"{response.status_code} {detail}" + (f" (Retry-After {retry_after} s)" if retry_after else "")


async def read_orders(client: OrderClient) -> list[dict]:
    """The learner's orders; a read that fails is tried again (a loaded bakery may drop one), and
    the last failure is raised when all READ_TRIES fail."""
    for tries in range(1, READ_TRIES + 1):
        try:
            return await client.orders()
        except (httpx.HTTPError, ValueError):
            if tries == READ_TRIES:
                raise
            await asyncio.sleep(0.5 * tries)
    raise AssertionError("unreachable")


async def wait_for_back_office(client: OrderClient, learner: Learner, scenario: Scenario, say,
                               poll_seconds: float = 0.25) -> None:
    """Poll the orders until each is settled, and until no abandoned attempt can still add one.

    An attempt the client gave up on may still be running on the server (the slow bakery bakes
    for TUNNEL_SLOW_SECONDS), so its order can appear after the retry's answer: the first read
    comes once that time is over. In a room the reads are spaced (``poll_seconds``, with jitter)
    so that the learners' polling does not crowd out the bakery it measures.
    """
    abandoned = [attempt.started for attempt in learner.attempts if attempt.status is None]
    quiet_after = learner.began + max(abandoned) + scenario.server_hold + 0.5 if abandoned else 0.0
    deadline = time.monotonic() + scenario.settle
    await asyncio.sleep(max(0.0, quiet_after - time.monotonic()))
    orders: list[dict] = []
    while True:
        try:
            orders = await read_orders(client)
        except (httpx.HTTPError, ValueError) as error:
            learner.unread = f"could not read the orders ({READ_TRIES} tries): {type(error).__name__} {error}"
            say(learner, f"back office: unknown, {learner.unread}")
            return
        if all(order["status"] in SETTLED for order in orders):
            break
        if time.monotonic() >= deadline:
            waiting = [f"#{order['id']} {order['status']}" for order in orders if order["status"] not in SETTLED]
            learner.error = (f"back office not finished after {scenario.settle:.0f} s: "
                             f"{', '.join(waiting) or 'no order'}")
            break
        await asyncio.sleep(poll_seconds * (0.5 + random.random()))
    learner.orders = orders
    learner.settled_after = time.monotonic() - learner.began
    states = ", ".join(f"order #{order['id']} {order['status']}" for order in reversed(orders)) or "no order"
    say(learner, f"back office: {states}")


def poll_interval(participants: int) -> float:
    """How often each learner reads its orders: 4 times a second alone, and the whole room at most
    about 100 reads a second, on the cores the bakery needs for the back office it measures."""
    return max(0.25, participants / 100)


async def run_room(scenario: Scenario, participants: int, say, tick) -> tuple[list[Learner], float]:
    started = time.monotonic()
    poll = poll_interval(participants)
    room = Room(participants)
    # A room told "press now" presses within a second or two, each learner at a moment of their own.
    tasks = [asyncio.create_task(
        run_learner(n, scenario, say, poll, started + random.uniform(0, scenario.spread), room))
        for n in range(1, participants + 1)]
    while not all(task.done() for task in tasks):
        await asyncio.wait(tasks, timeout=1.0)
        tick(time.monotonic() - started, sum(task.done() for task in tasks), participants)
    learners = [task.result() for task in tasks]
    for learner in learners:
        learner.first_sent = learner.began - started if learner.attempts else None
    return learners, time.monotonic() - started


class Command(BaseCommand):
    help = "Run the tunnel scenario over real HTTP against a running bakery (one learner or a room of them)."

    def add_arguments(self, parser):
        parser.add_argument("--mode", required=True, choices=MODES, help="What the tunnel does to attempt 1.")
        parser.add_argument("--tunnel-length", choices=list(TUNNEL_LENGTHS), default="1",
                            help="How many attempts go through the tunnel: 1 (default), 3, or forever.")
        parser.add_argument("--idempotency", choices=["on", "off"], default="on", help="The learner's switch.")
        parser.add_argument("--retries", type=int, default=settings.CLIENT_RETRY_MAX_ATTEMPTS,
                            help="Retries after attempt 1, same key (default CLIENT_RETRY_MAX_ATTEMPTS).")
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="The running bakery.")
        parser.add_argument("--participants", type=int, default=1,
                            help="Learners running at once, each its own customer.")
        parser.add_argument("--expect", choices=["one", "many"],
                            help="one: exactly 1 cake, 1 charge, 1 invoice each; many: more than one cake. "
                                 "Otherwise exit 1.")
        parser.add_argument("--timeout", type=float, default=settings.TUNNEL_CLIENT_TIMEOUT_SECONDS,
                            help="Client timeout per attempt, in seconds (the browser's fetch timeout).")
        parser.add_argument("--backoff", type=float,
                            help="First retry delay in seconds, doubled each time up to CLIENT_RETRY_CAP_SECONDS "
                                 "(default CLIENT_RETRY_BASE_SECONDS: the simulator page's policy).")
        parser.add_argument("--settle", type=float,
                            help="How long to wait for the back office (default 60 s, or half a second per order "
                                 "the room makes if longer: the demo's worker settles about 4 orders a second).")
        parser.add_argument("--server-hold", type=float,
                            default=max(settings.TUNNEL_HOLD_SECONDS, settings.TUNNEL_SLOW_SECONDS),
                            help="How long an abandoned attempt may keep running on the server.")
        parser.add_argument("--spread", type=float, default=PRESS_SPREAD_SECONDS,
                            help="The learners press within this many seconds of the start, each at a random "
                                 f"moment (default {PRESS_SPREAD_SECONDS:g}, as a room told to press now; 0: all "
                                 "at the same instant, as soon as each has a session).")
        parser.add_argument("--cake", default="strawberry-shortcake")

    def handle(self, *args, **options):
        if options["participants"] < 1 or options["retries"] < 0:
            raise CommandError("--participants must be at least 1 and --retries at least 0.")
        scenario = Scenario(
            url=options["url"].rstrip("/") + "/", mode=options["mode"], idempotency=options["idempotency"] == "on",
            tunnel_length=TUNNEL_LENGTHS[options["tunnel_length"]],
            retries=options["retries"], timeout=options["timeout"],
            backoff=RetryPolicy.from_settings(base=options["backoff"]),
            settle=options["settle"] or max(60.0, options["participants"] * 0.5
                                            * (1 if options["idempotency"] == "on" else 2)),
            server_hold=options["server_hold"], cake=options["cake"],
            spread=max(0.0, options["spread"]) if options["participants"] > 1 else 0.0,
            expect=options["expect"],
        )
        participants = options["participants"]
        solo = participants == 1
        self.stdout.write(
            f"Tunnel scenario: {scenario.mode} {scenario.tunnel_words}, idempotency {options['idempotency']}, "
            f"up to {scenario.retries} "
            f"retries, client timeout {scenario.timeout:g} s, {participants} learner{'s' * (not solo)} "
            f"against {scenario.url}" + ("" if solo else f", pressing within {scenario.spread:g} s")
        )

        def say(learner: Learner, line: str) -> None:
            if solo:  # one learner: its timeline is the progress display
                self.stdout.write(f"  {line}")

        def tick(elapsed: float, done: int, total: int) -> None:
            if not solo:
                self.stdout.write(f"  [{elapsed:5.1f} s] {done}/{total} learners finished")

        learners, wall = asyncio.run(run_room(scenario, participants, say, tick))
        self.report(learners, scenario, wall)
        unread = [learner for learner in learners if learner.unread]
        failed = [learner for learner in learners if not learner.meets(scenario.expect) and not learner.unread]
        for learner in failed + unread:
            if learner.error or learner.unread:
                self.stderr.write(f"learner {learner.number}: {learner.error or learner.unread}")
        problems = []
        if failed:
            problems.append(f"{len(failed)} of {len(learners)} learners did not see the expected outcome "
                            f"({scenario.expect or 'finished back office'}).")
        if unread:
            problems.append(f"{len(unread)} of {len(learners)} learners' orders could not be read, so their "
                            "counts are unknown (the bakery did not answer the reads; see above).")
        if problems:
            raise CommandError(" ".join(problems), returncode=1 if failed else UNREADABLE)

    def report(self, learners: list[Learner], scenario: Scenario, wall: float) -> None:
        write = self.stdout.write
        if len(learners) == 1 and not learners[0].attempts:
            raise CommandError(f"Cannot reach the bakery at {scenario.url}: {learners[0].error}. "
                               "Is it running (make demo)?")
        write("")
        trails = {learner.number: " ".join(attempt.short for attempt in learner.attempts) for learner in learners}
        width = max(8, *(len(trail) for trail in trails.values()))
        write(f"  {'learner':<22} {'attempts':<{width}} {'cakes':>5} {'charges':>7} {'invoices':>8} "
              f"{'emails':>6}  result")
        for learner in learners:
            attempts = trails[learner.number]
            verdict = "ok" if learner.meets(scenario.expect) else "UNEXPECTED"
            if scenario.expect is None:
                verdict = "ok" if not learner.error else "unfinished"
            if learner.unread:
                verdict = "UNKNOWN (orders unreadable)"
            count = learner.count
            write(f"  {(learner.label or f'learner {learner.number}')[:22]:<22} {attempts:<{width}} "
                  f"{count(learner.cakes):>5} {count(learner.charges):>7} {count(learner.invoices):>8} "
                  f"{count(learner.emails):>6}  {verdict}")
        read = [learner for learner in learners if not learner.unread]
        unknown = f" (+ {len(learners) - len(read)} unknown)" if len(read) < len(learners) else ""
        write(f"  {'total':<22} {'':<{width}} {sum(x.cakes for x in read):>5} {sum(x.charges for x in read):>7} "
              f"{sum(x.invoices for x in read):>8} {sum(x.emails for x in read):>6}{unknown}")
        if scenario.expect:
            wanted = "exactly 1 cake, 1 charge, 1 invoice" if scenario.expect == "one" else "more than one cake"
            good = sum(learner.meets(scenario.expect) for learner in learners)
            write(f"  expected {wanted} per learner: {good}/{len(learners)} as expected")
        answered = [learner.answered_after for learner in learners if learner.answered_after is not None]
        settled = [learner.settled_after for learner in learners if learner.settled_after is not None]
        requests = sum(len(learner.attempts) for learner in learners)
        write(f"  {len(learners)} order intents, {requests} order requests in {wall:.2f} s: "
              f"{len(learners) / wall:.1f} intents/s, {requests / wall:.1f} requests/s")
        sent = [learner.first_sent for learner in learners if learner.first_sent is not None]
        if len(learners) > 1 and sent:
            write(f"  first attempts sent: {len(sent)} of {len(learners)} learners, the last {max(sent):.2f} s "
                  "after the start")
        outside = [learner.timeouts_outside for learner in learners]
        write(f"  timeouts outside the tunnel: {sum(outside)} attempts, {sum(1 for n in outside if n)} of "
              f"{len(learners)} learners")
        if answered:
            write(f"  answer latency (first attempt to a 2xx): p50 {percentile(answered, 50):.2f} s, "
                  f"p99 {percentile(answered, 99):.2f} s")
        if settled:
            write(f"  to back office done: p50 {percentile(settled, 50):.2f} s, p99 {percentile(settled, 99):.2f} s")
        if len(learners) > 1:
            write("  (the learners, this command, the bakery and its engines share this machine's cores)")
        if scenario.mode == SLOW and not scenario.idempotency:
            write("  (the slow first attempt kept baking after the client gave up: that is the second cake)")
