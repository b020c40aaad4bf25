"""One key, one order from a client's very first request, over real HTTP with real curl.

The scope of a client's keys (its customer) is handed out before its first write, by the answer that
gives it the CSRF token. So when the first write's answer is lost, cookie included, the retry still
belongs to the same customer and gets the replay; two first writes at the same moment make one order;
and a write with no customer cookie at all is refused instead of being scoped to a customer that only
its own answer would name.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from orders.models import Customer, Order
from payments.models import Charge, EmailReceipt, Invoice
from tests.servers import BakeryServer
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

WORKSHOP = Path(__file__).resolve().parents[2] / "docs" / "workshop.md"
ONE = '{"items":[{"cake":"strawberry-shortcake","quantity":1}]}'


@pytest.fixture
def bakery(cake, celery_worker):
    server = BakeryServer({"TUNNEL_HOLD_SECONDS": "3"}).start()
    yield server
    server.stop()


class Curl:
    """The README's script: curl with one cookie jar file, kept across every request."""

    def __init__(self, url: str, folder: Path):
        assert shutil.which("curl"), "the recipe needs curl"
        self.url, self.jar = url, folder / "jar"

    def run(self, *args: str, path: str = "/api/orders/") -> subprocess.CompletedProcess:
        return subprocess.run(["curl", "-s", "-i", "-c", str(self.jar), "-b", str(self.jar), *args, self.url + path],
                              capture_output=True, text=True, timeout=30)

    def token(self) -> str:
        return next(line.split("\t")[6] for line in self.jar.read_text().splitlines() if "\tcsrftoken\t" in line)

    def order(self, key: str, *extra: str) -> subprocess.CompletedProcess:
        return self.run("-H", f"X-CSRFToken: {self.token()}", "-H", f"Idempotency-Key: {key}",
                        "-H", "Content-Type: application/json", "-d", ONE, *extra)


def status_of(answer: subprocess.CompletedProcess) -> int:
    return int(re.match(r"HTTP/\S+ (\d{3})", answer.stdout).group(1))


def replayed(answer: subprocess.CompletedProcess) -> bool:
    return "idempotent-replayed: true" in answer.stdout.lower()


def one_of_each(key: str) -> None:
    """Exactly one order for the key, and once the back office is done one charge, invoice and email."""
    order = wait_for(lambda: Order.objects.filter(idempotency_key=key, status=Order.Status.NOTIFIED).first(),
                     message=f"the order of key {key} to be notified")
    assert Order.objects.filter(idempotency_key=key).count() == 1
    assert [Charge.objects.filter(order=order).count(), Invoice.objects.filter(order=order).count(),
            EmailReceipt.objects.filter(order=order).count()] == [1, 1, 1]


def test_the_first_answer_lost_then_the_retry_is_one_order(bakery, tmp_path):
    curl, key = Curl(bakery.url, tmp_path), str(uuid.uuid4())
    assert status_of(curl.run(path="/api/me/")) == 200
    assert not Customer.objects.exists()  # the scope is in the jar, and no row yet

    lost = curl.order(key, "-H", "X-Bakery-Tunnel: response-lost", "--max-time", "1")
    assert lost.returncode == 28 and lost.stdout == ""  # curl gave up: no status, no cookie reached the jar
    retry = curl.order(key)

    assert status_of(retry) == 201 and replayed(retry), retry.stdout
    one_of_each(key)
    assert Customer.objects.count() == 1


def test_two_first_writes_at_the_same_moment_are_one_order(bakery, tmp_path):
    curl, key = Curl(bakery.url, tmp_path), str(uuid.uuid4())
    curl.run(path="/api/me/")
    token = curl.token()
    command = ["curl", "-s", "-i", "-b", str(curl.jar), "-H", f"X-CSRFToken: {token}", "-H", f"Idempotency-Key: {key}",
               "-H", "Content-Type: application/json", "-d", ONE, bakery.url + "/api/orders/"]
    racers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    answers = [racer.communicate(timeout=30)[0] for racer in racers]

    assert sorted(int(answer.split()[1]) for answer in answers) == [201, 201], answers
    assert sum("idempotent-replayed: true" in answer.lower() for answer in answers) == 1
    one_of_each(key)
    assert Customer.objects.count() == 1


def test_a_write_without_a_customer_cookie_is_refused_and_says_how_to_get_one(bakery, tmp_path):
    curl = Curl(bakery.url, tmp_path)
    curl.run(path="/api/me/")
    curl.jar.write_text("".join(line + "\n" for line in curl.jar.read_text().splitlines()
                                if "bakery_customer" not in line))  # keeps the CSRF token only

    refused = curl.order(str(uuid.uuid4()))

    assert status_of(refused) == 400 and "application/problem+json" in refused.stdout
    assert '"code": "customer-missing"' in refused.stdout and "GET /api/me/" in refused.stdout
    assert not Customer.objects.exists() and not Order.objects.exists()


def lab_5_recipe() -> str:
    """The shell block of the workshop's Lab 5, as a learner copies it."""
    lab = WORKSHOP.read_text().split('<a id="lab-5-changed-order"></a>', 1)[1]
    return re.search(r"```sh\n(.*?)```", lab, re.S).group(1)


def run_recipe(script: str, url: str, folder: Path) -> str:
    script = re.sub(r"^URL=.*$", f"URL={url}", script, count=1, flags=re.M)
    return subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True, timeout=60).stdout


def test_lab_5_as_written_answers_201_then_the_replay_then_422(bakery, tmp_path):
    output = run_recipe(lab_5_recipe(), bakery.url, tmp_path)

    assert re.findall(r"^HTTP/\S+ (\d{3})", output, re.M) == ["201", "201", "422"], output
    assert output.lower().count("idempotent-replayed: true") == 1
    assert '"fields": ["items[0].quantity"]' in output
    assert Order.objects.count() == 1


def test_lab_5_with_the_first_order_sent_twice_at_once_makes_one_order(bakery, tmp_path):
    setup = lab_5_recipe().split("\norder 1")[0]  # the recipe up to its first order
    output = run_recipe(setup + "\norder 1 & order 1; wait\n", bakery.url, tmp_path)

    assert re.findall(r"HTTP/1\.1 (\d{3})", output) == ["201", "201"], output  # the two answers may interleave
    assert output.lower().count("idempotent-replayed: true") == 1
    one_of_each(str(Order.objects.get().idempotency_key))
