"""The bench itself: every measurement of `make bench`, in one run, on the real stack.

Ours and each peer get the same gunicorn (several gthread workers), the same PostgreSQL and Redis,
the same handler and the same load generator. The phases run in this order, so that the 35 s
"slow handler" cases (pure waiting, no CPU) overlap with phases that do not measure throughput:

1. start engines, migrate, start one gunicorn per implementation; start the slow cases;
2. statements per request, edge cases (other customer, other body, handler exception), storms;
3. throughput: every figure in short interleaved rounds; then the latency the layer adds, one
   request at a time, against the handler alone;
4. (g) one session flooding (orders, then tunnel holds) while another customer orders; then, on the
   web tier as `make demo` runs it, 200 half-sent requests held open while another customer shops;
5. (e) the key store at 10,000 and 1,000,000 keys, with the purge while orders keep flowing;
6. (f) the back office with a real Celery worker, then every task delivered a second time;
7. (h) the room: the stack above is stopped, the default `make demo` starts on engines of its own,
   and rooms of 50 to 400 learners press at once in the default scene (tests/bench/room.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bakery.client import OrderClient, percentile
from tests.bench import report, room, stack
from tests.bench.halves import Halves
from tests.bench.load import OTHER_BODY, Result, drive, shoppers
from tests.flood import Flood
from tests.processes import GunicornProcess

OURS = "freeds-bakery"
PEERS = [name for name in stack.IMPLEMENTATIONS if name != OURS]
SLOW_HEADER = {"X-Bakery-Tunnel": "slow"}


@dataclass(frozen=True)
class Plan:
    quick: bool
    requests: int  # per round, per figure
    rounds: int
    concurrency: int
    storm_keys: int
    storm_size: int
    scales: tuple[int, ...]
    expired_share: float
    scale_replays: int
    fulfil_orders: int
    latency_samples: int  # per figure, one request at a time
    flood_seconds: float


FULL = Plan(False, requests=100, rounds=16, concurrency=int(os.environ.get("BENCH_CONCURRENCY", 8)), storm_keys=20,
            storm_size=64, scales=(10_000, 1_000_000), expired_share=0.2, scale_replays=1000, fulfil_orders=200,
            latency_samples=300, flood_seconds=10)
QUICK = Plan(True, requests=50, rounds=4, concurrency=int(os.environ.get("BENCH_CONCURRENCY", 8)), storm_keys=5,
             storm_size=64, scales=(10_000, 100_000), expired_share=0.2, scale_replays=200, fulfil_orders=30,
             latency_samples=100, flood_seconds=5)


@dataclass
class Findings:
    plan: Plan
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict = field(default_factory=dict)  # (case, impl) -> Result
    statements: dict = field(default_factory=dict)  # impl -> {"fresh": n, "replay": n, ...}
    storms: dict = field(default_factory=dict)  # impl -> {...}
    edges: dict = field(default_factory=dict)  # impl -> {case: {...}}
    scale: list = field(default_factory=list)
    back_office: dict = field(default_factory=dict)
    floods: dict = field(default_factory=dict)  # "alone" / "orders" / "tunnel" -> {"other": Result, "flood": ...}
    # "none" / "open" -> {"page": Result, "order": Result, "held": what the server did with the half requests}
    slow_clients: dict = field(default_factory=dict)
    rooms: list = field(default_factory=list)  # (h) one summary per room size
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def main(*, quick: bool, slow_seconds: float, retry_after: float, write_doc: bool) -> int:
    plan = QUICK if quick else FULL
    found = Findings(plan)
    began = time.monotonic()
    from bakery import engines

    log_dir = engines.data_dir() / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    servers: dict[str, stack.Server] = {}
    alone = worker = None
    try:
        env = stack.start_engines()
        import django

        django.setup()
        stack.migrate(env)
        servers = {name: stack.Server(name, env, log_dir, slow_seconds).launch() for name in stack.IMPLEMENTATIONS}
        alone = stack.Server(stack.HANDLER_ALONE, env, log_dir, slow_seconds).launch()
        for server in [*servers.values(), alone]:
            server.wait_ready(timeout=90)
        found.timings["setup"] = time.monotonic() - began
        log(f"stack up in {found.timings['setup']:.0f} s: " + ", ".join(f"{n} :{s.port}" for n, s in servers.items()))

        slow = SlowCases(servers, slow_seconds, retry_after).start()
        found.statements = {name: count_statements(server, env) for name, server in servers.items()}
        log("statements per request: " + ", ".join(
            f"{n} {s['fresh']:.0f}/{s['replay']:.0f}" for n, s in found.statements.items()))
        for name, server in servers.items():
            found.edges[name] = edge_cases(server)
            found.storms[name] = storm(server, plan)
            log(f"storm {name}: {found.storms[name]['orders']} orders for {plan.storm_keys} keys, "
                f"{dict(found.storms[name]['result'].statuses)}")
        for name, outcome in slow.join().items():
            found.edges[name]["slow"] = outcome
        log("slow retry: " + ", ".join(f"{n} {e['slow']['verdict']}" for n, e in found.edges.items()))

        throughput(servers, plan, found)
        added_latency(servers[OURS], alone, plan, found)
        alone.stop()
        alone = None
        for peer in PEERS:
            servers.pop(peer).stop()
        floods(env, log_dir, plan, found)
        slow_clients(env, log_dir, plan, found)
        scale(servers[OURS], plan, found)
        worker = stack.Worker(env, log_dir)
        back_office(servers[OURS], worker, plan, found)
    finally:
        if worker is not None:
            worker.stop()
        for server in [*servers.values(), *([alone] if alone else [])]:
            server.stop()
        stack.stop_engines()
    found.rooms = room.rooms(log_dir, room.QUICK_ROOM_SIZES if quick else room.ROOM_SIZES, log)
    found.timings["total"] = time.monotonic() - began
    text = report.render(found)
    print(text.console, flush=True)
    if write_doc:
        report.write_doc(text.markdown)
        log(f"wrote {report.DOC_PATH}")
    return 0


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:5.0f} s] {message}", flush=True)


def login_needed(name: str) -> bool:
    return name == "drf-idempotencykey"  # it guards authenticated users only


def make_shoppers(server, count: int, **start) -> list[OrderClient]:
    return shoppers(server.url, server.order_url, count, login=login_needed(server.name), **start)


# --- database helpers (main thread, outside the event loop) ------------------------------------


def orders_per_key(keys) -> Counter:
    from django.db.models import Count

    from orders.models import Order

    rows = Order.objects.filter(idempotency_key__in=list(keys)).values("idempotency_key").annotate(n=Count("id"))
    return Counter({row["idempotency_key"]: row["n"] for row in rows})


def sql(statement: str, params=None, fetch: bool = False):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if fetch else None


# --- statements per request --------------------------------------------------------------------


def count_statements(server, env) -> dict:
    command = [sys.executable, "-m", "tests.bench.statements", server.order_url]
    if login_needed(server.name):
        command.append("--login")
    done = subprocess.run(command, cwd=stack.ROOT, env={**env, "DJANGO_SETTINGS_MODULE": server.settings_module},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"counting statements for {server.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- edge cases: other customer, other body, handler exception ----------------------------------

FAULT_SQL = """
CREATE TABLE IF NOT EXISTS bench_fault (key uuid PRIMARY KEY);
CREATE OR REPLACE FUNCTION bench_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM bench_fault WHERE key = NEW.idempotency_key) THEN
        RAISE EXCEPTION 'bench: the handler failed (injected for key %)', NEW.idempotency_key;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS bench_fault ON orders_order;
CREATE TRIGGER bench_fault BEFORE INSERT ON orders_order FOR EACH ROW EXECUTE FUNCTION bench_fault();
"""


def edge_cases(server) -> dict:
    """The same handler failure for every implementation: a trigger makes the order INSERT raise
    for one key (a real database error inside the handler), then the key is cleared and retried."""
    sql(FAULT_SQL)
    other_customer, other_body, failing = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sql("INSERT INTO bench_fault (key) VALUES (%s)", [failing])

    async def scenario():
        first, second = await make_shoppers(server, 2)
        answers = {}
        a1, b1 = await first.order(other_customer), None
        b1 = await second.order(other_customer)
        answers["customer"] = (a1, b1, first.customer_id, second.customer_id)
        answers["body"] = (await first.order(other_body), await first.order(other_body, OTHER_BODY))
        failed = await first.order(failing)
        await asyncio.to_thread(clear_fault, failing)
        answers["exception"] = (failed, await first.order(failing))
        for shopper in (first, second):
            await shopper.close()
        return answers

    answers = asyncio.run(scenario())
    sql("DROP TRIGGER IF EXISTS bench_fault ON orders_order")
    counts = orders_per_key([other_customer, other_body, failing])
    a1, b1, _a_id, b_id = answers["customer"]
    from orders.models import Order

    leaked = b1.status_code < 300 and order_id(b1) == order_id(a1)
    b_orders = Order.objects.filter(idempotency_key=other_customer, customer_id=b_id).count()
    customer = {"first": a1.status_code, "second": b1.status_code, "leaked": leaked, "second_orders": b_orders,
                "verdict": "ok: own order" if (b1.status_code == 201 and not leaked and b_orders == 1)
                else ("LEAK: got the other customer's order" if leaked
                      else f"wrong: {b1.status_code}, {b_orders} orders")}
    first_body, second_body = answers["body"]
    n = counts[other_body]
    body = {"first": first_body.status_code, "second": second_body.status_code, "orders": n,
            "verdict": f"ok: {second_body.status_code}" if (400 <= second_body.status_code < 500 and n == 1)
            else (f"DUPLICATE: {n} orders" if n > 1 else f"wrong: {second_body.status_code}")}
    failed, retried = answers["exception"]
    n = counts[failing]
    exception = {"first": failed.status_code, "retry": retried.status_code, "orders": n,
                 "verdict": "ok: retry made it" if (failed.status_code >= 500 and retried.status_code == 201 and n == 1)
                 else (f"STUCK: retry got {retried.status_code}" if n == 0
                       else f"wrong: {failed.status_code}/{retried.status_code}, {n} orders")}
    return {"customer": customer, "body": body, "exception": exception}


def clear_fault(key) -> None:
    from django.db import connection

    sql("DELETE FROM bench_fault WHERE key = %s", [key])
    connection.close()


def order_id(response):
    try:
        return response.json().get("id")
    except (ValueError, AttributeError):
        return None


# --- the retry that arrives while the first request is still running -----------------------------


class SlowCases:
    """Per implementation: a slow first request, a retry while it still runs, a last retry after."""

    def __init__(self, servers, slow_seconds: float, retry_after: float):
        self.servers, self.slow_seconds, self.retry_after = dict(servers), slow_seconds, retry_after
        self.answers: dict = {}
        self.keys = {name: uuid.uuid4() for name in servers}

    def start(self) -> SlowCases:
        self.thread = threading.Thread(target=lambda: self.answers.update(asyncio.run(self._all())), daemon=True)
        self.thread.start()
        return self

    async def _all(self) -> dict:
        names = list(self.servers)
        done = await asyncio.gather(*(self._one(self.servers[name], self.keys[name]) for name in names))
        return dict(zip(names, done, strict=True))

    async def _one(self, server, key) -> dict:
        (shopper,) = await make_shoppers(server, 1)
        first = asyncio.create_task(shopper.order(key, extra_headers=SLOW_HEADER))
        await asyncio.sleep(self.retry_after)
        started = time.perf_counter()
        retry = await shopper.order(key)
        retry_ms = (time.perf_counter() - started) * 1000
        first = await first
        last = await shopper.order(key)
        await shopper.close()
        return {"first": first.status_code, "retry": retry.status_code, "retry_ms": retry_ms,
                "last": last.status_code}

    def join(self) -> dict:
        self.thread.join(timeout=self.slow_seconds + 120)
        counts = orders_per_key(self.keys.values())
        for name, answer in self.answers.items():
            n = answer["orders"] = counts[self.keys[name]]
            answer["verdict"] = (f"ok: retry got {answer['retry']}, 1 order" if n == 1
                                 else f"DUPLICATE: {n} orders" if n > 1 else "no order")
        return self.answers


# --- (d) storms ----------------------------------------------------------------------------------


def storm(server, plan: Plan) -> dict:
    keys = [uuid.uuid4() for _ in range(plan.storm_keys)]

    async def run() -> Result:
        total = Result()
        for key in keys:
            (shopper,) = await shoppers(server.url, server.order_url, 1, connections=plan.storm_size,
                                        login=login_needed(server.name))
            total = total.merge(await drive([(shopper, key, None)] * plan.storm_size, plan.storm_size))
            await shopper.close()
        return total

    result = asyncio.run(run())
    counts = orders_per_key(keys)
    created = sum(counts.values())
    return {"result": result, "orders": created, "duplicates": sum(max(0, counts[k] - 1) for k in keys),
            "keys_without_order": sum(1 for k in keys if counts[k] == 0)}


# --- (a), (b), (c) and the peers' (b), (c) ----------------------------------------------------------


def throughput(servers, plan: Plan, found: Findings) -> None:
    """(a), (b), (c) for ours and (b), (c) for each peer, interleaved in short rounds: the machine is
    shared, so a drift in its load hits every figure alike instead of the one measured then. Each
    round sends (a) and every (b), then replays that round's (b) keys as (c); the order of the
    figures turns by one place every round, so none is always first or last."""
    figures = [("a", OURS), *[("b", name) for name in stack.IMPLEMENTATIONS]]

    async def run() -> dict:
        pools = {}
        for case, name in figures:
            pools[(case, name)] = await make_shoppers(servers[name], plan.concurrency, idempotency=case != "a")
            await drive([(pool, uuid.uuid4(), None) for pool in pools[(case, name)] for _ in range(2)],
                        plan.concurrency)
        rounds = {}
        for index in range(plan.rounds):
            turn = index % len(figures)
            sent = {}
            for figure in figures[turn:] + figures[:turn]:
                pool = pools[figure]
                calls = [(pool[i % len(pool)], uuid.uuid4(), None) for i in range(plan.requests)]
                rounds.setdefault(figure, []).append(await drive(calls, plan.concurrency,
                                                                 meter=cpu_meter(servers[figure[1]])))
                if figure[0] == "b":
                    sent[figure[1]] = calls
            for _case, name in figures[turn:] + figures[:turn]:
                if name in sent:
                    rounds.setdefault(("c", name), []).append(
                        await drive(sent.pop(name), plan.concurrency, meter=cpu_meter(servers[name])))
        for pool in pools.values():
            for shopper in pool:
                await shopper.close()
        return rounds

    for figure, results in asyncio.run(run()).items():
        found.results[figure] = merge(results)
    for name in stack.IMPLEMENTATIONS:
        log(f"{name}: " + ", ".join(f"{case} {found.results[(case, name)].ok_throughput:.0f} 2xx/s "
                                    f"{dict(found.results[(case, name)].statuses)}"
                                    for case in "abc" if (case, name) in found.results))


def cpu_meter(server):
    """CPU seconds of ``server``'s gunicorn (master and workers) and of the embedded PostgreSQL."""
    from bakery import engines

    return lambda: {"web": stack.cpu_seconds(server.process.pid), "db": stack.cpu_seconds(engines.postgres_pid())}


def added_latency(server, alone, plan: Plan, found: Findings) -> None:
    """What the layer adds to one request when nothing else is waiting: one request at a time, the
    handler with no layer at all (``alone``), (a), (b) and (c) taking turns, so a drift in the
    machine's load hits all four alike. All but (c) send fresh keys; (c) the key (b) sent one turn
    before."""

    async def run() -> dict[str, Result]:
        (bare,) = await shoppers(alone.url, alone.order_url, 1)
        (off,) = await make_shoppers(server, 1, idempotency=False)
        (on,) = await make_shoppers(server, 1)
        results = {case: Result() for case in ("alone", "a", "b", "c")}
        previous = uuid.uuid4()
        await on.order(previous)
        await bare.order(uuid.uuid4())
        for _ in range(plan.latency_samples):
            key = uuid.uuid4()
            turns = (("alone", bare, uuid.uuid4()), ("a", off, uuid.uuid4()), ("b", on, key), ("c", on, previous))
            for case, shopper, sent in turns:
                started = time.perf_counter()
                response = await shopper.order(sent)
                elapsed = time.perf_counter() - started
                results[case].latencies.append(elapsed * 1000)
                results[case].elapsed += elapsed
                results[case].statuses[response.status_code] += 1
            previous = key
        for shopper in (bare, off, on):
            await shopper.close()
        return results

    for case, result in asyncio.run(run()).items():
        found.results[(f"{case}-alone" if case != "alone" else "handler-alone", OURS)] = result
    alone_result, b, c = (found.results[(case, OURS)] for case in ("handler-alone", "b-alone", "c-alone"))
    log(f"one at a time: (b) - handler alone p50 {b.p50 - alone_result.p50:+.2f} ms, p99 "
        f"{b.p99 - alone_result.p99:+.2f} ms; (c) - handler alone p50 {c.p50 - alone_result.p50:+.2f} ms")


def merge(results: list[Result]) -> Result:
    total = Result()
    for result in results:
        total = total.merge(result)
    return total


# --- (g) one session floods, another customer orders --------------------------------------------------

FLOOD_CONCURRENCY = 100
OTHER_PACE_SECONDS = 0.25  # the other customer orders 4 times a second, under the product's burst rate


def floods(env, log_dir, plan: Plan, found: Findings) -> None:
    """A server with the product's own throttles and tunnel (as `make demo` runs), one flooding session
    in a process of its own keeping 100 requests in flight, and another customer ordering meanwhile."""
    server = stack.Server(OURS, stack.room_defaults(env), log_dir, slow_seconds=4, label="room-defaults").start(90)
    try:
        for case in ("alone", "orders", "tunnel"):
            flood = None
            if case != "alone":
                flood = Flood(server.url, what=case, concurrency=FLOOD_CONCURRENCY,
                              seconds=plan.flood_seconds).start()
                time.sleep(1)  # in full swing
            other = asyncio.run(other_customer(server, plan.flood_seconds - (0 if case == "alone" else 2)))
            flooded = flood.join() if flood else Counter()
            found.floods[case] = {"other": other, "flood": flooded}
            log(f"(g) {case}: other customer p50 {other.p50:.0f} ms p99 {other.p99:.0f} ms "
                f"{dict(other.statuses)}; flood answers {dict(flooded)}")
    finally:
        server.stop()


async def other_customer(server, seconds: float) -> Result:
    (shopper,) = await make_shoppers(server, 1)
    result = Result()
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        started = time.perf_counter()
        response = await shopper.order(uuid.uuid4())
        result.latencies.append((time.perf_counter() - started) * 1000)
        result.statuses[response.status_code] += 1
        await asyncio.sleep(max(0.0, OTHER_PACE_SECONDS - (time.perf_counter() - started)))
    result.elapsed = time.perf_counter() - began
    await shopper.close()
    return result


# --- (g) slow clients hold half-sent requests open, another customer shops ----------------------------

def slow_clients(env, log_dir, plan: Plan, found: Findings) -> None:
    """The web tier as `make demo` runs it (gunicorn with bakery.web's worker serving bakery.asgi, 2
    processes, the product's defaults), another customer loading ``GET /`` and placing an order every
    250 ms, first alone, then while a process of its own keeps 200 half-sent requests open."""
    server = GunicornProcess(env={**stack.room_defaults(env), "DJANGO_SETTINGS_MODULE": "bakery.settings"},
                             log_path=log_dir / "gunicorn-web-tier.log", port=stack.unused_port(), workers=2,
                             asgi=True).start(90)
    try:
        asyncio.run(page_and_order(server.url, 2))  # warm: the first requests of a process are slower
        for case in ("none", "open"):
            halves = None
            if case == "open":
                halves = Halves(server.url, heads=report.HALF_REQUESTS // 2, bodies=report.HALF_REQUESTS // 2,
                                seconds=plan.flood_seconds + 2, local_address=report.HALVES_ADDRESS).start()
            page, order = asyncio.run(page_and_order(server.url, plan.flood_seconds))
            held = halves.join() if halves else Counter()
            found.slow_clients[case] = {"page": page, "order": order, "held": held}
            log(f"(g) half requests {case}: other customer GET / p50 {page.p50:.0f} ms p99 {page.p99:.0f} ms, "
                f"order p50 {order.p50:.0f} ms p99 {order.p99:.0f} ms {dict(order.statuses)}; held {dict(held)}")
    finally:
        server.stop()


async def page_and_order(url: str, seconds: float) -> tuple[Result, Result]:
    """Another customer, every 250 ms: the home page, then an order; each timed."""
    (shopper,) = await shoppers(url, "/api/orders/", 1)
    page, order = Result(), Result()
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        started = time.perf_counter()
        response = await shopper.http.get("/", headers={"Accept": "text/html"})
        page.latencies.append((time.perf_counter() - started) * 1000)
        page.statuses[response.status_code] += 1
        ordered = time.perf_counter()
        response = await shopper.order(uuid.uuid4())
        order.latencies.append((time.perf_counter() - ordered) * 1000)
        order.statuses[response.status_code] += 1
        await asyncio.sleep(max(0.0, OTHER_PACE_SECONDS - (time.perf_counter() - started)))
    page.elapsed = order.elapsed = time.perf_counter() - began
    await shopper.close()
    return page, order


# --- (e) the key store at scale, and the purge ------------------------------------------------------

FILL_SQL = """
INSERT INTO orders_idempotencyrecord
    (scope, owner, key, fingerprint, request, response_status, response_body, response_headers, created_at)
SELECT 'orders.create',
       md5((i %% 50000)::text)::uuid::text,
       gen_random_uuid()::text,
       encode(sha256(i::text::bytea), 'hex'),
       '{"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": ""}'::jsonb,
       201,
       convert_to(rpad('{"id": ' || i || ', "status": "placed", "items": []', 640, ' '), 'UTF8'),
       '{"Content-Type": "application/json"}'::jsonb,
       CASE WHEN random() < %s THEN now() - interval '2 days' - random() * interval '1 day'
            ELSE now() - random() * interval '20 hours' END
FROM generate_series(1, %s) AS i
"""


def scale(server, plan: Plan, found: Findings) -> None:
    from django.conf import settings
    from django.db import connection

    for target in plan.scales:
        existing = sql("SELECT count(*) FROM orders_idempotencyrecord", fetch=True)[0][0]
        started = time.perf_counter()
        sql(FILL_SQL, [plan.expired_share, max(0, target - existing)])
        # Settle what the fill wrote (visibility map, statistics, dirty pages) before timing, so the
        # replays meet a key store in its steady state rather than the fill's aftermath.
        sql("VACUUM ANALYZE orders_idempotencyrecord")
        sql("CHECKPOINT")
        fill_seconds = time.perf_counter() - started
        total = sql("SELECT count(*) FROM orders_idempotencyrecord", fetch=True)[0][0]
        lookup = lookup_latency()
        replays = asyncio.run(replay_keys(server, plan.scale_replays, plan))
        found.results[(f"e-replay-{target}", OURS)] = replays
        expired = sql("SELECT count(*) FROM orders_idempotencyrecord "
                      "WHERE created_at < now() - %s * interval '1 second'",
                      [settings.IDEMPOTENCY_KEY_TTL], fetch=True)[0][0]
        purge = purge_while_ordering(server, plan)
        connection.close()
        found.results[(f"e-during-purge-{target}", OURS)] = purge["orders"]
        row = {"target": target, "keys": total, "fill_seconds": fill_seconds, "lookup": lookup, "expired": expired,
               **{k: v for k, v in purge.items() if k != "orders"}}
        found.scale.append(row)
        log(f"scale {total} keys: lookup p50 {lookup['p50']:.2f} ms p99 {lookup['p99']:.2f} ms, replay p50 "
            f"{replays.p50:.1f} ms; purged {purge['purged']} in {purge['seconds']:.1f} s ({purge['batches']} batches)")


def lookup_latency(samples: int = 1000) -> dict:
    """The layer's own replay statement (the record and its replay event, orders.idempotency.
    _replay_finished), timed in-process for random stored keys."""
    from orders.idempotency import KeyRef, _replay_finished

    rows = sql("SELECT owner, key, fingerprint FROM orders_idempotencyrecord ORDER BY random() LIMIT %s",
               [samples], fetch=True)
    times = []
    for owner, key, fingerprint in rows:
        guard = KeyRef(scope="orders.create", owner=owner, key=key, source="api")
        started = time.perf_counter()
        assert _replay_finished(guard, {}, fingerprint) is not None
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": percentile(times, 50), "p99": percentile(times, 99), "count": len(times)}


async def replay_keys(server, count: int, plan: Plan) -> Result:
    """Replays over HTTP: new customers finish ``count`` keys, then send each one again (timed)."""
    pool = await make_shoppers(server, plan.concurrency)
    calls = [(pool[i % len(pool)], uuid.uuid4(), None) for i in range(count)]
    await drive(calls, plan.concurrency)
    result = await drive(calls, plan.concurrency)
    for shopper in pool:
        await shopper.close()
    return result


def purge_while_ordering(server, plan: Plan) -> dict:
    from django.conf import settings
    from django.db import connection

    from orders.keys import purge_expired_keys

    async def run():
        pool = await make_shoppers(server, 8)
        done = asyncio.Event()
        result = Result()

        async def lane(shopper):
            while not done.is_set():
                started = time.perf_counter()
                response = await shopper.order(uuid.uuid4())
                result.latencies.append((time.perf_counter() - started) * 1000)
                result.statuses[response.status_code] += 1

        def purge():
            try:
                began = time.perf_counter()
                purged = purge_expired_keys()
                return purged, time.perf_counter() - began
            finally:
                connection.close()

        lanes = [asyncio.create_task(lane(s)) for s in pool]
        await asyncio.sleep(0.5)
        began = time.perf_counter()
        purged, seconds = await asyncio.to_thread(purge)
        done.set()
        await asyncio.gather(*lanes)
        result.elapsed = time.perf_counter() - began + 0.5
        for shopper in pool:
            await shopper.close()
        return purged, seconds, result

    purged, seconds, orders = asyncio.run(run())
    batch = settings.IDEMPOTENCY_PURGE_BATCH
    return {"purged": purged, "seconds": seconds, "batches": purged // batch + 1, "batch_size": batch,
            "orders": orders}


# --- (f) the back office ------------------------------------------------------------------------------

TASKS = ["payments.capture_payment", "payments.issue_invoice", "payments.send_confirmation"]


def back_office(server, worker, plan: Plan, found: Findings) -> None:
    import redis
    from django.conf import settings

    from bakery.celery import app

    app.loader.import_default_modules()
    missing = [name for name in TASKS if name not in app.tasks]
    if missing:
        found.back_office = {"missing": missing}
        log(f"(f) skipped: the Celery app has no {', '.join(missing)} yet")
        return
    # Every order of the earlier phases left a payment task in the outbox, with no worker running to
    # relay it: start clean, or the worker's relay would first publish thousands of them.
    sql("UPDATE payments_outboxmessage SET dispatched_at = now() WHERE dispatched_at IS NULL")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker.start()
    from orders.models import Event, Order
    from payments.models import Charge, EmailReceipt, Invoice, ProviderCharge

    async def place() -> list[int]:
        pool = await make_shoppers(server, 8)
        result = await drive([(pool[i % len(pool)], uuid.uuid4(), None) for i in range(plan.fulfil_orders)], 8,
                             keep_bodies=True)
        for shopper in pool:
            await shopper.close()
        return [json.loads(body)["id"] for _key, status, body in result.bodies if status == 201]

    ids = asyncio.run(place())
    orders = Order.objects.filter(pk__in=ids)
    deadline = time.monotonic() + (300 if not plan.quick else 60)
    while time.monotonic() < deadline:
        settled = orders.filter(status__in=[Order.Status.NOTIFIED, Order.Status.PAYMENT_FAILED]).count()
        if settled == len(ids):
            break
        time.sleep(0.25)
    from django.db.models import Max, Min

    notified = orders.filter(status=Order.Status.NOTIFIED)
    span = notified.aggregate(first=Min("created_at"), last=Max("updated_at"))
    seconds = (span["last"] - span["first"]).total_seconds() if span["last"] else float("nan")
    provider_before = ProviderCharge.objects.count()

    since = datetime.now(UTC)
    for order_pk in ids:
        for name in TASKS:
            app.send_task(name, args=[order_pk])
    expected, last_seen, quiet_since = 3 * len(ids), -1, time.monotonic()
    deadline = time.monotonic() + (180 if not plan.quick else 45)
    kinds = [Event.Kind.DEDUPE, Event.Kind.REPLAY]
    while time.monotonic() < deadline:
        seen = Event.objects.filter(created_at__gte=since, kind__in=kinds, order_id__in=ids).count()
        if seen >= expected:
            break
        if seen != last_seen:
            last_seen, quiet_since = seen, time.monotonic()
        elif time.monotonic() - quiet_since > 15:
            break
        time.sleep(0.25)
    dedupe_seconds = (datetime.now(UTC) - since).total_seconds()
    events = Counter(Event.objects.filter(created_at__gte=since, order_id__in=ids).values_list("kind", flat=True))

    def per_order(model) -> Counter:
        return Counter(Counter(model.objects.filter(order_id__in=ids).values_list("order_id", flat=True)).values())

    found.back_office = {
        "orders": len(ids), "notified": notified.count(), "seconds": seconds,
        "per_second": notified.count() / seconds if seconds and not math.isnan(seconds) else float("nan"),
        "statuses": Counter(orders.values_list("status", flat=True)),
        "redelivered": 3 * len(ids), "dedupe_events": events.get(Event.Kind.DEDUPE, 0),
        "replay_events": events.get(Event.Kind.REPLAY, 0), "other_events": {k: v for k, v in events.items()
                                                                          if k not in kinds},
        "dedupe_seconds": dedupe_seconds,
        "charges": per_order(Charge), "invoices": per_order(Invoice), "emails": per_order(EmailReceipt),
        "provider_charges_added": ProviderCharge.objects.count() - provider_before,
    }
    log(f"(f) {found.back_office['notified']}/{len(ids)} notified, {found.back_office['per_second']:.1f}/s; "
        f"redelivered {3 * len(ids)}: events {dict(events)}")


def machine() -> dict:
    memory = "?"
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
            memory = f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "memory": memory, "cpu": cpu, "python": platform.python_version()}
