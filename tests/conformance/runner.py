"""Run the anyonce conformance vectors (``vectors/``) against a fixture served over HTTP.

Written for this project from the suite's published description of its vector format and
execution rules; plain Python and httpx, no pytest, so ``make conformance`` and the test suite
share it. A vector is ``{id, tier, title, requires?, steps}``; a step is ``{id, delayMs?,
concurrentWith?, request, expect}``. The rules:

* ``POST /reset`` before every vector; steps run in order;
* a step named in a later step's ``concurrentWith`` is sent and left pending; the later step waits
  ``delayMs``, is sent while those are pending, and the group is awaited and checked together, with
  one ``GET /counter`` read for ``handlerInvocations``;
* ``expect``: ``status``; ``headers`` (exact, ``present``, ``absent`` or ``regex``, names
  case-insensitive); ``bodyEquals`` (text, or ``sameAs`` an earlier step's bytes); ``bodyJson``
  (members equal); ``bodyBytes`` (length); ``handlerInvocations`` (the counter after the step);
* a vector that ``requires`` a capability the target was not declared to have is
  ``not-applicable``: neither a pass nor a fail.

The bakery's fixture is a session customer like every other client, so a :class:`Target` first
calls ``GET /api/me/`` for the ``csrftoken`` cookie, becomes a customer with its first write
(``PATCH /api/me/``), and sends ``X-CSRFToken``.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

VECTORS = Path(__file__).with_name("vectors")
TIERS = ("core", "profile")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def load_vectors(only: list[str] | None = None) -> list[dict]:
    vectors = [json.loads(path.read_text()) for tier in TIERS for path in sorted((VECTORS / tier).glob("*.json"))]
    return [vector for vector in vectors if not only or vector["id"] in only]


@dataclass
class Result:
    id: str
    tier: str
    status: str  # pass, fail, not-applicable, error
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class Target:
    """The fixture at ``base_url + prefix``, reached as one session customer with its CSRF token."""

    def __init__(self, base_url: str, *, prefix: str = "/conformance", login_path: str | None = None):
        self.base_url, self.prefix = base_url.rstrip("/"), prefix
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        self.client.get("/api/me/").raise_for_status()
        # Reading creates nothing: the first write makes this session a customer and sets its cookie,
        # which every request below then carries (so they all count as one customer).
        self.client.patch("/api/me/", json={"idempotency": True}, headers=self._csrf()).raise_for_status()
        if login_path:  # a package that only guards logged-in users gets one
            self.client.post(login_path, headers=self._csrf()).raise_for_status()

    def _csrf(self) -> dict:
        return {"X-CSRFToken": self.client.cookies["csrftoken"]}

    def send(self, request: dict) -> httpx.Response:
        headers = dict(request.get("headers", {}))
        if request["method"] not in SAFE_METHODS:
            headers.update(self._csrf())
        body = request.get("body")
        # A client of its own per request (same cookies), so concurrent steps really overlap.
        with httpx.Client(base_url=self.base_url, cookies=self.client.cookies, timeout=30) as client:
            return client.request(request["method"], self.prefix + request["path"], headers=headers,
                                  content=body.encode() if body is not None else None)

    def reset(self) -> None:
        response = self.send({"method": "POST", "path": "/reset"})
        if response.status_code != 204:
            raise RuntimeError(f"POST /reset answered {response.status_code}")

    def invocations(self) -> int:
        return int(self.send({"method": "GET", "path": "/counter"}).json()["count"])

    def close(self) -> None:
        self.client.close()


def run_vector(target: Target, vector: dict, capabilities: set[str]) -> Result:
    missing = set(vector.get("requires", [])) - capabilities
    if missing:
        return Result(vector["id"], vector["tier"], "not-applicable", [f"requires {', '.join(sorted(missing))}"])
    try:
        return Result(vector["id"], vector["tier"], *_run_steps(target, vector["steps"]))
    except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as error:
        return Result(vector["id"], vector["tier"], "error", [f"{type(error).__name__}: {error}"])


def _run_steps(target: Target, steps: list[dict]) -> tuple[str, list[str]]:
    target.reset()
    left_pending = {name for step in steps for name in step.get("concurrentWith", [])}
    pending: dict = {}
    bodies: dict[str, bytes] = {}
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=max(2, len(steps))) as pool:
        for step in steps:
            if step["id"] in left_pending:
                pending[step["id"]] = (step, pool.submit(target.send, step["request"]))
                continue
            time.sleep(step.get("delayMs", 0) / 1000)
            sent = pool.submit(target.send, step["request"])
            group = [pending.pop(name) for name in step.get("concurrentWith", [])] + [(step, sent)]
            answered = [(member, future.result()) for member, future in group]
            wanted = any("handlerInvocations" in member["expect"] for member, _ in answered)
            count = target.invocations() if wanted else None
            for member, response in answered:
                bodies[member["id"]] = response.content
                found = check(member["expect"], response, bodies, count)
                failures += [f"{member['id']}: {problem}" for problem in found]
    return ("fail" if failures else "pass"), failures


def check(expect: dict, response: httpx.Response, bodies: dict[str, bytes], count: int | None) -> list[str]:
    found = []
    if response.status_code != expect["status"]:
        found.append(f"status: expected {expect['status']}, got {response.status_code}")
    for name, wanted in expect.get("headers", {}).items():
        value = response.headers.get(name)
        if isinstance(wanted, str):
            ok, said = value == wanted, repr(wanted)
        elif wanted.get("present"):
            ok, said = value is not None, "present"
        elif wanted.get("absent"):
            ok, said = value is None, "absent"
        else:
            ok, said = value is not None and re.search(wanted["regex"], value) is not None, f"/{wanted['regex']}/"
        if not ok:
            found.append(f"header {name}: expected {said}, got {value!r}")
    if "bodyEquals" in expect:
        wanted = expect["bodyEquals"]
        body = bodies[wanted["sameAs"]] if isinstance(wanted, dict) else wanted.encode()
        if response.content != body:
            found.append(f"body: expected {_short(body)}, got {_short(response.content)}")
    if "bodyJson" in expect:
        try:
            document = response.json()
        except ValueError:
            document = None
        for member, wanted in expect["bodyJson"].items():
            got = document.get(member) if isinstance(document, dict) else None
            if got != wanted:
                found.append(f"body.{member}: expected {wanted!r}, got {got!r}")
    if "bodyBytes" in expect and len(response.content) != expect["bodyBytes"]:
        found.append(f"body length: expected {expect['bodyBytes']}, got {len(response.content)}")
    if "handlerInvocations" in expect and count != expect["handlerInvocations"]:
        found.append(f"handlerInvocations: expected {expect['handlerInvocations']}, got {count}")
    return found


def _short(body: bytes) -> str:
    return repr(body[:60]) + (f"... ({len(body)} bytes)" if len(body) > 60 else "")


def run_suite(base_url: str, *, capabilities=("short-ttl",), login_path: str | None = None,
              only: list[str] | None = None) -> list[Result]:
    target = Target(base_url, login_path=login_path)
    try:
        return [run_vector(target, vector, set(capabilities)) for vector in load_vectors(only)]
    finally:
        target.close()


def summary(results: list[Result]) -> str:
    """``core X/11, profile Y/9``: passes out of every vector of the tier (not-applicable is no pass)."""
    vectors = load_vectors()
    return ", ".join(
        f"{tier} {sum(r.passed for r in results if r.tier == tier)}/{sum(v['tier'] == tier for v in vectors)}"
        for tier in TIERS
    )


def table(columns: dict[str, list[Result]], *, details: bool = True) -> str:
    """A markdown table: one row per vector, one column per implementation, then the totals."""
    names = list(columns)
    by_id = {name: {r.id: r for r in results} for name, results in columns.items()}
    lines = ["| vector | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for vector in load_vectors():
        cells = []
        for name in names:
            result = by_id[name].get(vector["id"])
            cells.append("–" if result is None else _cell(result, details))
        lines.append(f"| `{vector['id']}` | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(summary(columns[name]) for name in names) + " |")
    return "\n".join(lines)


def _cell(result: Result, details: bool) -> str:
    mark = {"pass": "pass", "fail": "FAIL", "not-applicable": "n/a", "error": "ERROR"}[result.status]
    if details and result.failures and result.status != "pass":
        return f"{mark}: " + "; ".join(result.failures).replace("|", "\\|")
    return mark
