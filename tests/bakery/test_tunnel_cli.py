"""`manage.py tunnel` against a live bakery: real HTTP, a real Celery worker, real aborted requests.

Timings are shortened so that the whole matrix runs in well under a minute, keeping the order
that matters: client timeout (1 s) < tunnel hold (1.5 s) and < slow bakery (2 s).
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.models import Customer, Order
from payments.models import Charge, Invoice
from tests.processes import ARTIFACTS, ROOT
from tests.servers import CeleryWorker, worker_environment

pytestmark = [pytest.mark.worker]

CLIENT_TIMEOUT = "1"


@pytest.fixture(scope="module")
def room_worker(django_db_setup, django_db_blocker):
    """One real worker for the module: starting one per test would cost more than the tests."""
    import redis
    from django.conf import settings

    with django_db_blocker.unblock():
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        worker = CeleryWorker(name="tunnel-cli", concurrency=4).start()
    yield worker
    worker.stop()


@pytest.fixture
def short_tunnel(settings):
    settings.TUNNEL_HOLD_SECONDS = 1.5
    settings.TUNNEL_SLOW_SECONDS = 2
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.5


def run_cli(url: str, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("tunnel", "--url", url, "--timeout", CLIENT_TIMEOUT, "--backoff", "0.1", "--settle", "40",
                     *args, stdout=out, stderr=err)
        code = 0
    except CommandError as error:
        code = error.returncode
        err.write(str(error))
    return code, out.getvalue() + err.getvalue()


def fulfilled_per_customer() -> dict[str, tuple[int, int, int]]:
    """(cakes, succeeded charges, invoices) per customer, read from the database, not from the CLI."""
    result = {}
    for customer in Customer.objects.all():
        orders = Order.objects.filter(customer=customer)
        result[str(customer.pk)] = (
            sum(order.cake_count for order in orders.prefetch_related("items")),
            Charge.objects.filter(order__in=orders, status=Charge.Status.SUCCEEDED).count(),
            Invoice.objects.filter(order__in=orders).count(),
        )
    return result


@pytest.mark.parametrize(
    "mode, idempotency, expect, cakes, timeline",
    [
        # The talk's tunnel: the bakery baked, the answer was lost, the retry bakes again...
        ("response-lost", "off", "many", 2, ["attempt 1 through the tunnel (response-lost)", "gave up after 1.00 s",
                                              "attempt 2 retry, same key", "(new)"]),
        # ...unless the key makes the retry a replay.
        ("response-lost", "on", "one", 1, ["gave up after 1.00 s", "replayed: no new cake"]),
        # A lost request never reached the bakery: a retry is safe even without a key.
        ("request-lost", "off", "one", 1, ["attempt 1 through the tunnel (request-lost)", "gave up", "(new)"]),
        ("request-lost", "on", "one", 1, ["gave up", "(new)"]),
        # The slow bakery: the abandoned first attempt is still baking when the retry arrives.
        ("slow", "off", "many", 2, ["gave up", "(new)", "kept baking after the client gave up"]),
        ("slow", "on", "one", 1, ["gave up", "409", "Retry-After 1 s", "replayed: no new cake"]),
    ],
)
def test_the_scenario_over_http_gives_the_expected_cakes(
    live_server, room_worker, cake, short_tunnel, mode, idempotency, expect, cakes, timeline
):
    code, output = run_cli(live_server.url, "--mode", mode, "--idempotency", idempotency, "--retries", "3",
                           "--expect", expect)
    assert code == 0, output
    for text in timeline:
        assert text in output, f"{text!r} missing from:\n{output}"
    assert "1/1 as expected" in output
    # What the CLI printed is what the database holds: one customer, and its cakes all charged and invoiced.
    assert list(fulfilled_per_customer().values()) == [(cakes, cakes, cakes)]
    assert Customer.objects.get().last_scenario == mode


def test_the_wrong_expectation_exits_non_zero_from_the_command_line(live_server, room_worker, cake, short_tunnel):
    """As a smoke test in a shell script: `--expect one` with idempotency off must fail, with exit status 1."""
    finished = subprocess.run(
        [sys.executable, "manage.py", "tunnel", "--url", live_server.url, "--mode", "response-lost",
         "--idempotency", "off", "--retries", "1", "--timeout", CLIENT_TIMEOUT, "--backoff", "0.1",
         "--server-hold", "1.5", "--settle", "40", "--expect", "one"],
        cwd=ROOT, env=worker_environment(), capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "UNEXPECTED" in finished.stdout
    assert "1 of 1 learners did not see the expected outcome (one)" in finished.stderr
    assert list(fulfilled_per_customer().values()) == [(2, 2, 2)]


def test_a_bakery_that_is_not_running_is_a_clear_error(db):
    code, output = run_cli("http://127.0.0.1:9/", "--mode", "response-lost", "--expect", "one")
    assert code == 1
    assert "Cannot reach the bakery at http://127.0.0.1:9/" in output


def test_a_room_of_learners_each_gets_exactly_one_cake(live_server, room_worker, cake, short_tunnel):
    participants = 40
    code, output = run_cli(live_server.url, "--mode", "response-lost", "--idempotency", "on", "--retries", "4",
                           "--participants", str(participants), "--expect", "one")
    (ARTIFACTS / f"tunnel-participants-{participants}.txt").write_text(output)
    assert code == 0, output
    assert f"{participants}/{participants} as expected" in output
    assert "learners finished" in output  # the progress display
    assert "intents/s" in output and "p50" in output and "p99" in output
    counts = fulfilled_per_customer()
    assert len(counts) == participants
    assert set(counts.values()) == {(1, 1, 1)}


def test_a_tunnel_three_attempts_long_then_the_open_road(live_server, room_worker, cake, short_tunnel):
    code, output = run_cli(live_server.url, "--mode", "response-lost", "--tunnel-length", "3", "--idempotency", "on",
                           "--retries", "4", "--expect", "one")
    assert code == 0, output
    assert "Tunnel scenario: response-lost for 3 attempts" in output
    attempts = re.findall(r"^  \+ *\d+\.\d\d s  attempt .*$", output, re.M)
    assert "attempt 1 through the tunnel (response-lost)" in attempts[0] and "gave up" in attempts[0]
    for line in attempts[1:3]:
        assert "retry in the tunnel (response-lost)" in line and "gave up" in line, output
    assert "retry, same key" in attempts[3] and "replayed: no new cake" in attempts[3]
    assert len(attempts) == 4
    assert list(fulfilled_per_customer().values()) == [(1, 1, 1)]


def test_a_tunnel_until_switched_off_never_lets_an_answer_out(live_server, room_worker, cake, short_tunnel):
    """The bakery baked once at the first attempt; the phone, never out of the tunnel, never knew."""
    code, output = run_cli(live_server.url, "--mode", "response-lost", "--tunnel-length", "forever",
                           "--idempotency", "on", "--retries", "2")
    assert code == 0, output
    assert "response-lost until switched off" in output
    attempts = re.findall(r"^  \+ *\d+\.\d\d s  attempt .*$", output, re.M)
    assert len(attempts) == 3 and all("gave up" in line for line in attempts), output
    assert "timeout timeout timeout" in output
    assert list(fulfilled_per_customer().values()) == [(1, 1, 1)]


class ReadsDropped:
    """A real TCP hop in front of the bakery that passes everything on but drops every connection on
    which a client reads its orders (``GET /api/orders/``): a network that loses exactly those reads."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.dropped = 0
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _client(self, reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source, sink, inspect: bool):
            try:
                while data := await source.read(65536):
                    if inspect and data.startswith(b"GET /api/orders/ "):
                        self.dropped += 1
                        break
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                for side in (writer, upstream_writer):
                    side.close()

        await asyncio.gather(pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False))

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_a_read_that_keeps_failing_is_unknown_never_zero_cakes(live_server, room_worker, cake, short_tunnel):
    """The bakery baked; only the CLI's reads are lost. Its row must say "unknown", not 0 cakes, and the
    exit status must say the counts could not be read."""
    hop = ReadsDropped(int(live_server.url.rsplit(":", 1)[1]))
    try:
        code, output = run_cli(hop.url, "--mode", "response-lost", "--idempotency", "on", "--retries", "3",
                               "--expect", "one")
    finally:
        hop.close()
    assert code == 3, output
    assert hop.dropped == 5, "the read was tried five times"
    assert "UNKNOWN (orders unreadable)" in output and "unknown" in output
    assert "0/1 as expected" in output
    assert "1 of 1 learners' orders could not be read, so their counts are unknown" in output
    assert "did not see the expected outcome" not in output
    assert list(fulfilled_per_customer().values()) == [(1, 1, 1)]


def test_a_room_reads_the_back_office_only_once_every_learner_has_its_answer(live_server, room_worker, cake,
                                                                             short_tunnel):
    """A learner done early does not poll the bakery while others are still placing their order: in a
    room of 200 those reads took a third of the web processes' time from the retries still coming."""
    from bakery.client import RetryPolicy
    from bakery.management.commands.tunnel import Room, Scenario, run_learner

    scenario = Scenario(url=live_server.url + "/", mode="response-lost", idempotency=True, tunnel_length=1,
                        retries=4, timeout=float(CLIENT_TIMEOUT), backoff=RetryPolicy.from_settings(base=0.1),
                        settle=40, server_hold=1.5, spread=0, cake=cake.slug, expect="one")

    async def room_of_two():
        room, now = Room(2), time.monotonic()
        early = run_learner(1, scenario, lambda *_: None, press_at=now, room=room)
        late = run_learner(2, scenario, lambda *_: None, press_at=now + 6, room=room)
        return await asyncio.gather(early, late)

    early, late = asyncio.run(room_of_two())
    assert early.meets("one") and late.meets("one")
    late_answer = late.began + late.answered_after
    # The early learner's own order was settled within a few seconds; it read it only after the late answer.
    assert early.began + early.settled_after > late_answer
