"""The kitchen catches fire: the facilitator's way to take a part of `make demo` away for a while.

The web process and the demo's supervisor talk through files in ``<BAKERY_DATA_DIR>/kitchen-fire/``,
because what goes down (PostgreSQL, Redis) is exactly what they would otherwise talk through:

- ``supervisor.pid``: written by `make demo`'s supervisor while it runs, removed when it stops.
  The panel is available when it names a live process; under docker compose there is none.
- ``command.json``: one fire asked for by the dashboard (written whole, by rename), to start
  DELAY_SECONDS after the press. The supervisor picks it up then (it looks twice a second), removes
  it and starts the fire (bakery/demo_fire.py).
- ``fire.json``: the supervisor's account of the current or last fire: what, for how long, when it
  started and when the part was back, and how many orders waited.
- ``waited.log``: one line per order attempt the web answered 503 while PostgreSQL was away
  (``<unix time> <Idempotency-Key or ->``), appended by bakery/outage.py. It needs neither
  PostgreSQL nor Redis; the supervisor counts the keys in it ("4 orders waited"), and the dashboard
  takes each key's first 503 as the start of its wait. A new fire starts it afresh.

Nothing here touches PostgreSQL or Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bakery.engines import BASE_DIR

# What the panel can set on fire, as the form names it and as the terminal says it.
PARTS = {"postgres": "PostgreSQL", "redis": "Redis", "worker": "The worker"}
MIN_SECONDS, MAX_SECONDS = 1, 60
# A fire starts this long after the press, so the facilitator's own dashboard has loaded again first.
DELAY_SECONDS = 2
# The step the worker is killed inside: the provider has charged, the bakery has not committed yet.
WORKER_STEP = "capture"
UNAVAILABLE = ("Only `make demo` can set the kitchen on fire: its supervisor takes a part away and brings it "
               "back. No demo supervisor runs beside this web process{why}. Under docker compose, "
               "`docker compose kill postgres` (then `docker compose start postgres`) does it by hand.")


class FireRefused(ValueError):
    """A fire the panel cannot start: the sentence says why (the web answers 400 or 409)."""

    def __init__(self, sentence: str, status: int = 400):
        super().__init__(sentence)
        self.status = status


@dataclass
class Fire:
    part: str  # a key of PARTS
    seconds: int
    started: float  # unix time the fire began
    back: float | None = None  # unix time the part answered again
    waited: int = 0  # orders (keys) answered 503 while PostgreSQL was away
    said: str = ""  # the supervisor's last line about it

    @property
    def name(self) -> str:
        return PARTS[self.part]

    @property
    def back_after(self) -> float | None:
        """Seconds from the fire to the part answering again."""
        return None if self.back is None else self.back - self.started

    @property
    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.started, tz=UTC)


def folder() -> Path:
    """The channel's folder, without creating anything (a web container may not write there)."""
    return Path(os.environ.get("BAKERY_DATA_DIR", BASE_DIR / ".local")).resolve() / "kitchen-fire"


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a reader never sees half a file."""
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    part.write_text(text)
    os.replace(part, path)


# --- the supervisor's side ------------------------------------------------------------------------


def open_channel() -> Path:
    """Called by the supervisor once the bakery runs: the panel becomes available."""
    here = folder()
    here.mkdir(parents=True, exist_ok=True)
    (here / "command.json").unlink(missing_ok=True)  # asked of a previous run
    (here / "waited.log").unlink(missing_ok=True)
    _write(here / "supervisor.pid", str(os.getpid()))
    return here


def close_channel() -> None:
    (folder() / "supervisor.pid").unlink(missing_ok=True)
    (folder() / "command.json").unlink(missing_ok=True)


def take_command() -> dict | None:
    """The fire the dashboard asked for, once its time has come; taken once."""
    path = folder() / "command.json"
    try:
        asked = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(asked, dict) and isinstance(asked.get("at"), (int, float)) and time.time() < asked["at"]:
        return None
    path.unlink(missing_ok=True)
    return asked


def record(fire: Fire) -> None:
    _write(folder() / "fire.json", json.dumps(asdict(fire)))


def forget_waits() -> None:
    (folder() / "waited.log").unlink(missing_ok=True)


def waited_since(since: float) -> int:
    """How many orders got a 503 at or after unix time ``since``: one per key (a phone retrying
    with its key is one order waiting), and one per attempt that carried no key."""
    keys, unkeyed = set(), 0
    for at, key in waits():
        if at >= since:
            if key == "-":
                unkeyed += 1
            else:
                keys.add(key)
    return len(keys) + unkeyed


# --- the web's side -------------------------------------------------------------------------------


def unavailable_reason() -> str:
    """"" when `make demo`'s supervisor listens; else the sentence the panel shows instead of its buttons."""
    try:
        pid = int((folder() / "supervisor.pid").read_text())
    except (OSError, ValueError):
        return UNAVAILABLE.format(why="")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return UNAVAILABLE.format(why=" (the last one has stopped)")
    except PermissionError:
        pass  # alive, another user's
    return ""


def bounded_seconds(value) -> int:
    text = str(value or "").strip()
    if not text.isdigit() or not MIN_SECONDS <= int(text) <= MAX_SECONDS:
        raise FireRefused(f"How long: a whole number of seconds from {MIN_SECONDS} to {MAX_SECONDS}, "
                          f"not {text[:20]!r}.")
    return int(text)


def ask(part: str, seconds) -> Fire:
    """Hand one fire to the supervisor; refused (FireRefused) with a sentence when it cannot be."""
    if part not in PARTS:
        raise FireRefused(f"Which part: one of {', '.join(PARTS)}, not {str(part)[:20]!r}.")
    seconds = bounded_seconds(seconds)
    if reason := unavailable_reason():
        raise FireRefused(reason, status=409)
    burning = last_fire()
    if (folder() / "command.json").exists() or (burning is not None and burning.back is None):
        raise FireRefused("A fire is already burning: wait until its part is back, then start the next.", status=409)
    fire = Fire(part=part, seconds=seconds, started=time.time() + DELAY_SECONDS)
    _write(folder() / "command.json", json.dumps({"part": part, "seconds": seconds, "at": fire.started}))
    return fire


def last_fire() -> Fire | None:
    try:
        return Fire(**json.loads((folder() / "fire.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def count_wait(key: str | None) -> None:
    """One order attempt answered 503 while PostgreSQL is away; only beside a demo supervisor."""
    here = folder()
    if not (here / "supervisor.pid").exists():
        return
    key = "".join(ch for ch in (key or "").lower() if ch.isalnum() or ch == "-")[:64] or "-"
    with contextlib.suppress(OSError), open(here / "waited.log", "a") as log:
        log.write(f"{time.time():.3f} {key}\n")  # one short append: whole, among many processes


def waits() -> list[tuple[float, str]]:
    """Every (unix time, key) in waited.log, oldest first."""
    try:
        lines = (folder() / "waited.log").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        at, _, key = line.partition(" ")
        with contextlib.suppress(ValueError):
            found.append((float(at), key))
    return found
