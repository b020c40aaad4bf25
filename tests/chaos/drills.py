"""Fault drills' helpers: the bakery's processes as `make demo` runs them, the engines they all share,
shoppers who retry with the same key until the bakery answers, and the table the drills fill in
(tests/chaos/conftest.py prints it at the end of the run and writes it to artifacts/chaos.md).

The engines are the run's embedded PostgreSQL and Redis (bakery.engines), the same ones the web
tier, the worker, beat and this process use: a drill SIGKILLs the real valkey-server or postmaster
and brings it back through bakery.engines, exactly as an operator restarting the engines would.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from django.conf import settings
from django.db import connections

from bakery import engines
from bakery.demo import WORKER_CONCURRENCY
from orders.models import Order
from payments.models import Charge, EmailReceipt, Invoice, ProviderCharge
from tests.mail import Mailbox
from tests.processes import ARTIFACTS, GunicornProcess
from tests.servers import CeleryBeat, CeleryWorker, point_celery_at, worker_environment

# Every drill's promise: after the fault is repaired, every accepted order is settled within this.
RECOVERY_LIMIT_SECONDS = 60
FINAL = {Order.Status.NOTIFIED, Order.Status.PAYMENT_FAILED}


@dataclass
class DrillResult:
    fault: str
    accepted: int
    lost: int
    duplicated: int
    stranded: int
    recover_seconds: float
    note: str = ""


RESULTS: list[DrillResult] = []


def embedded_engines_only():
    data = engines.data_dir()
    port = (data / "redis" / "port").read_text().strip() if (data / "redis" / "port").exists() else None
    if not (settings.DATABASES["default"]["HOST"].startswith(str(data / "postgres"))
            and settings.REDIS_URL == f"redis://127.0.0.1:{port}/0"):
        pytest.skip("the drills SIGKILL the embedded engines; DATABASE_URL/REDIS_URL point at servers not ours")


# --- the engines ----------------------------------------------------------------------------------


def _kill(pid: int | None, what: str) -> None:
    assert pid and engines._pid_alive(pid), f"no running {what} to kill"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while engines._pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_redis() -> None:
    _kill(engines.redis_pid(), "valkey-server")


def revive_redis() -> None:
    assert engines.start_embedded_redis() == settings.REDIS_URL, "Redis must come back where everyone looks for it"
    point_celery_at(settings.CELERY_BROKER_URL)  # this process's broker connections died with the old one


def _drop_pools() -> None:
    """This process's connections (and their pools) die with the server: start afresh."""
    for alias in connections:
        connections[alias].close()
        connections[alias].close_pool()


def kill_postgres() -> None:
    _drop_pools()
    _kill(engines.postgres_pid(), "postmaster")


def revive_postgres() -> None:
    engines.start_embedded_postgres()
    _drop_pools()


# --- the processes ---------------------------------------------------------------------------------


class Stack:
    """gunicorn (gthread, 2 workers x 24 threads), a Celery worker (2 prefork children) and beat,
    with `make demo`'s settings, on this run's database and engines. Emails go to ``mailbox``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.mailbox = Mailbox(folder / "mail")
        self.mailbox.path.mkdir(parents=True, exist_ok=True)
        self.mail_env = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                         "EMAIL_FILE_PATH": str(self.mailbox.path)}
        # The drills' shoppers order one after another for as long as a fault lasts: the order
        # throttles (a room's guard against one flooding learner) are off, as their subject is the faults.
        self.web = GunicornProcess(env={**worker_environment(), "DATABASE_POOL_SIZE": "8",
                                        "ORDER_THROTTLE_RATE": "off", "ORDER_BURST_RATE": "off"},
                                   log_path=ARTIFACTS / "chaos-gunicorn.log", workers=2, threads=24,
                                   extra_args=("--graceful-timeout", "10"))
        self.worker: CeleryWorker | None = None
        self.others: list[CeleryWorker] = []
        self.beat: CeleryBeat | None = None

    def start(self) -> Stack:
        self.web.start()
        self.start_worker()
        self.beat = CeleryBeat(self.folder, {"DATABASE_POOL_SIZE": "0"}).start()
        return self

    def start_worker(self, name: str = "chaos", concurrency: int = WORKER_CONCURRENCY, **env) -> CeleryWorker:
        worker = CeleryWorker(name, concurrency=concurrency,
                              extra_env={**self.mail_env, "DATABASE_POOL_SIZE": "0",
                                         **{key: str(value) for key, value in env.items()}})
        worker.start(timeout=90)
        if name == "chaos":
            self.worker = worker
        else:
            self.others.append(worker)
        return worker

    def kill_worker(self, worker: CeleryWorker) -> None:
        """SIGKILL the worker and its prefork children at once: a machine or container dying."""
        if worker.process.poll() is None:
            for pid in worker_processes(worker):
                os.kill(pid, signal.SIGKILL)
            worker.process.wait(10)

    def kill_others(self) -> None:
        while self.others:
            self.kill_worker(self.others.pop())

    def stop(self) -> None:
        for process in (self.beat, self.worker, self.web):
            if process is not None:
                process.stop()

    def emails_for(self, order_id: int) -> int:
        return sum(f"order #{order_id} is confirmed" in message for message in self.mailbox.messages())

    def clean(self) -> None:
        for file in self.mailbox.path.glob("*"):
            file.unlink()
        redis.Redis.from_url(settings.REDIS_URL).flushdb()


# --- shoppers -------------------------------------------------------------------------------------


@dataclass
class Intent:
    """One order a shopper wants, retried with the same key until the bakery answers."""

    key: uuid.UUID
    statuses: list = field(default_factory=list)  # each attempt's HTTP status, or the error's name
    order_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.order_id is not None


class Shopper:
    """A browser-like customer on the real web tier: a cookie jar, a session, the CSRF header."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=15)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/api/me/").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no session from the web tier"
            time.sleep(0.3)
        # Reading creates nothing: the first write makes this session a customer.
        self.http.patch("/api/me/", json={"idempotency": True},
                        headers={"X-CSRFToken": self.http.cookies["csrftoken"]}).raise_for_status()

    def attempt(self, key, **headers) -> httpx.Response | Exception:
        try:
            return self.http.post("/api/orders/", json={"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                                  headers={"Idempotency-Key": str(key),
                                           "X-CSRFToken": self.http.cookies.get("csrftoken", ""), **headers})
        except httpx.HTTPError as error:
            return error

    def place(self, intent: Intent, *, give_up_at: float, **headers) -> Intent:
        """Retry with the same key (0.3 s apart) until 201 or a 4xx, like the simulator's phone."""
        while time.monotonic() < give_up_at:
            answer = self.attempt(intent.key, **headers)
            intent.statuses.append(answer.status_code if isinstance(answer, httpx.Response) else type(answer).__name__)
            if isinstance(answer, httpx.Response) and answer.status_code == 201:
                intent.order_id = answer.json()["id"]
                return intent
            if isinstance(answer, httpx.Response) and 400 <= answer.status_code < 500 and answer.status_code != 409:
                return intent
            time.sleep(0.3)
        return intent


class Traffic:
    """``shoppers`` customers placing orders one after another until ``stop()``; each finishes the
    intent in hand (retrying through the fault) before it stops."""

    def __init__(self, url: str, shoppers: int = 3, pause: float = 0.15):
        self.shoppers = [Shopper(url) for _ in range(shoppers)]
        self.pause = pause
        self.intents: list[Intent] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(shopper,), daemon=True) for shopper in self.shoppers]

    def _run(self, shopper: Shopper) -> None:
        while not self._stop.is_set():
            intent = Intent(uuid.uuid4())
            with self._lock:
                self.intents.append(intent)
            shopper.place(intent, give_up_at=time.monotonic() + 90)
            time.sleep(self.pause)

    def start(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def accepted_count(self) -> int:
        with self._lock:
            return sum(intent.accepted for intent in self.intents)

    def stop(self) -> list[Intent]:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)
        return self.intents


def wait_until(predicate, *, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {message}"
        time.sleep(0.25)
    return value


# --- the one assertion every drill ends with -------------------------------------------------------


def settle(stack: Stack, fault: str, intents: list[Intent], *, recovered_at: float, note: str = "",
           limit: float = RECOVERY_LIMIT_SECONDS) -> DrillResult:
    """Wait until every accepted order is notified (or payment_failed with a reason), then count.

    Fails the drill unless nothing was lost, duplicated or stranded within ``limit`` seconds of
    ``recovered_at`` (time.monotonic() when the fault was repaired), and each notified order has
    exactly one charge (and one at the provider), one invoice, one email receipt and one email.
    """
    accepted = [intent for intent in intents if intent.accepted]
    ids = [intent.order_id for intent in accepted]
    deadline = recovered_at + limit

    def unsettled() -> list[int]:
        done = set(Order.objects.filter(pk__in=ids, status__in=FINAL).values_list("pk", flat=True))
        return [pk for pk in ids if pk not in done]

    while (waiting := unsettled()) and time.monotonic() < deadline:
        time.sleep(0.25)
    recover_seconds = time.monotonic() - recovered_at

    orders = {order.pk: order for order in Order.objects.filter(pk__in=ids)}
    lost = [pk for pk in ids if pk not in orders]
    per_key = Counter(Order.objects.filter(idempotency_key__in=[i.key for i in accepted]).values_list(
        "customer_id", "idempotency_key"))
    duplicated = sum(count - 1 for count in per_key.values())
    problems = []
    for pk, order in orders.items():
        if order.status == Order.Status.PAYMENT_FAILED:
            if not order.failure_reason:
                problems.append(f"order #{pk} payment_failed without a reason")
            continue
        if order.status != Order.Status.NOTIFIED:
            continue
        counts = {
            "charges": Charge.objects.filter(order_id=pk, status=Charge.Status.SUCCEEDED).count(),
            "provider charges": ProviderCharge.objects.using("provider").filter(
                idempotency_key=str(order.fulfilment_key)).count(),
            "invoices": Invoice.objects.filter(order_id=pk).count(),
            "receipts": EmailReceipt.objects.filter(order_id=pk).count(),
            "emails": stack.emails_for(pk),
        }
        extra = {name: n for name, n in counts.items() if n != 1}
        duplicated += sum(max(0, n - 1) for n in extra.values())
        if extra:
            problems.append(f"order #{pk}: {extra}")
    result = DrillResult(fault, len(accepted), len(lost), duplicated, len(waiting), round(recover_seconds, 1), note)
    RESULTS.append(result)
    assert not lost and not duplicated and not waiting and not problems, (result, problems, waiting)
    return result


def worker_processes(worker: CeleryWorker) -> list[int]:
    """The Celery worker's own pid and its prefork children's."""
    try:
        parent = psutil.Process(worker.process.pid)
        return [parent.pid, *(child.pid for child in parent.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def gunicorn_workers(web: GunicornProcess) -> list[int]:
    """The web worker processes, the one with the most open client connections first."""

    def clients(process: psutil.Process) -> int:
        return sum(1 for conn in process.net_connections("tcp")
                   if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == web.port)

    children = psutil.Process(web.process.pid).children()
    return [child.pid for child in sorted(children, key=clients, reverse=True)]
