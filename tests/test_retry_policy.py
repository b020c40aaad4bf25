"""The one retry policy, as both clients compute it: the phone in the browser (static/js/retry.js, run
here by node) and `manage.py tunnel` (bakery/client.py). One table of cases; both must give its
answers, so a change to one that the other does not follow fails here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bakery.client import RetryPolicy

RETRY_JS = Path(__file__).resolve().parent.parent / "static" / "js" / "retry.js"

# node loads retry.js as an ES module from a data: URL (the file sits in no package that says it is
# one), reads the cases on stdin and prints, for each, its waits: the case's own random number, or
# `samples` fresh ones from Math.random.
NODE_DRIVER = """
import { readFileSync } from "node:fs";
const { cases, source } = JSON.parse(readFileSync(0, "utf8"));
const url = "data:text/javascript;base64," + Buffer.from(source).toString("base64");
const { retryWaitSeconds } = await import(url);
const waits = cases.map((c) => {
  const policy = { base: c.base, cap: c.cap };
  const once = (random) => retryWaitSeconds(policy, c.retry, c.status, c.retry_after, random);
  return c.random === null ? Array.from({ length: c.samples }, () => once()) : [once(c.random)];
});
process.stdout.write(JSON.stringify(waits));
"""

# base 1 s and cap 8 s are the defaults of settings.CLIENT_RETRY_*; 0.4 s is the browser tests' base.
# (base, cap, retry, status, Retry-After, random, the wait in seconds)
TABLE = [
    # No answer at all (the client timeout): the backoff alone, doubling up to the cap.
    (1, 8, 1, None, None, 0.0, 0.5),
    (1, 8, 1, None, None, 0.5, 0.75),
    (1, 8, 2, None, None, 0.0, 1.0),
    (1, 8, 2, None, None, 0.5, 1.5),
    (1, 8, 3, None, None, 0.5, 3.0),
    (1, 8, 4, None, None, 0.0, 4.0),
    (1, 8, 4, None, None, 0.5, 6.0),
    (1, 8, 5, None, None, 0.5, 6.0),
    (1, 8, 8, None, None, 0.75, 7.0),
    (0.4, 8, 1, None, None, 0.5, 0.3),
    (0.4, 8, 3, None, None, 0.0, 0.8),
    # A 500 says nothing about when: its Retry-After is not taken.
    (1, 8, 1, 500, "30", 0.5, 0.75),
    # 409, 429 and 503 say when: the wait starts there, and the jitter still spreads it.
    (1, 8, 1, 409, "1", 0.0, 1.0),
    (1, 8, 1, 409, "1", 0.5, 1.25),
    (1, 8, 2, 429, "10", 0.5, 10.5),
    (1, 8, 1, 429, "3", 0.0, 3.0),
    (1, 8, 1, 503, "2", 0.5, 2.25),
    (1, 8, 1, 503, "1.5", 0.0, 1.5),
    (0.4, 8, 1, 409, "1", 0.5, 1.1),
    # A Retry-After shorter than the backoff's floor changes nothing: it is a minimum.
    (1, 8, 4, 503, "2", 0.0, 4.0),
    (1, 8, 4, 409, "0", 0.5, 6.0),
    # Absent or not understood: the backoff alone.
    (1, 8, 1, 409, None, 0.5, 0.75),
    (1, 8, 1, 429, "", 0.5, 0.75),
    (1, 8, 1, 429, "soon", 0.5, 0.75),
    (1, 8, 1, 503, "-3", 0.5, 0.75),
    (1, 8, 1, 503, "Wed, 21 Oct 2015 07:28:00 GMT", 0.5, 0.75),
    (1, 8, 2, 503, "0x10", 0.0, 1.0),
    (1, 8, 2, 503, "Infinity", 0.0, 1.0),
    (1, 8, 2, 409, "1e3", 0.0, 1.0),
]


def case(base, cap, retry, status, retry_after, random, samples=1) -> dict:
    return {"base": base, "cap": cap, "retry": retry, "status": status, "retry_after": retry_after,
            "random": random, "samples": samples}


def node_waits(cases: list[dict]) -> list[list[float]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run the phone's retry policy (static/js/retry.js)")
    answer = subprocess.run([node, "--input-type=module", "-e", NODE_DRIVER],
                            input=json.dumps({"cases": cases, "source": RETRY_JS.read_text()}),
                            capture_output=True, text=True, timeout=60, check=False)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def python_waits(cases: list[dict]) -> list[list[float]]:
    def once(c, random_value=None):
        policy = RetryPolicy(base=c["base"], cap=c["cap"], max_attempts=8)
        return policy.wait(c["retry"], c["status"], c["retry_after"], random_value=random_value)

    return [[once(c) for _ in range(c["samples"])] if c["random"] is None else [once(c, c["random"])]
            for c in cases]


def test_the_phone_and_the_tunnel_cli_wait_the_same():
    cases = [case(*row[:6]) for row in TABLE]
    expected = [[row[6]] for row in TABLE]
    for name, waits in (("the phone (static/js/retry.js)", node_waits(cases)),
                        ("the tunnel CLI (bakery/client.py)", python_waits(cases))):
        wrong = [(row[:6], want, got) for row, want, got in zip(TABLE, expected, waits, strict=True)
                 if got != pytest.approx(want, abs=1e-9)]
        assert wrong == [], f"{name} waits otherwise: (case, expected, got) {wrong}"


# (base, cap, retry, status, Retry-After, shortest wait, longest wait)
WINDOWS = [
    (1, 8, 1, None, None, 0.5, 1.0),
    (1, 8, 2, None, None, 1.0, 2.0),
    (1, 8, 3, None, None, 2.0, 4.0),
    (1, 8, 4, None, None, 4.0, 8.0),
    (1, 8, 6, None, None, 4.0, 8.0),
    (1, 8, 1, 409, "1", 1.0, 1.5),
    (1, 8, 1, 429, "10", 10.0, 10.5),
    (1, 8, 1, 503, "2", 2.0, 2.5),
]


@pytest.mark.parametrize("row", WINDOWS, ids=lambda row: f"retry {row[2]} after {row[3]} Retry-After {row[4]}")
def test_a_room_of_200_phones_comes_back_spread_out(row):
    """200 phones given the same answer: none comes back before the server asked, none later than the
    window, and they spread over most of it rather than arriving together."""
    *setup, shortest, longest = row
    room = case(*setup, random=None, samples=200)
    for name, (waits,) in (("the phone", node_waits([room])), ("the tunnel CLI", python_waits([room]))):
        assert len(waits) == 200
        assert shortest <= min(waits) and max(waits) <= longest, f"{name}: {min(waits)}..{max(waits)}"
        # 200 uniform draws leave less than 1e-8 chance of missing the window's outer tenths by luck.
        width = longest - shortest
        assert max(waits) - min(waits) > 0.8 * width, f"{name} came back bunched: {min(waits)}..{max(waits)}"
