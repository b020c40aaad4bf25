"""`make demo` heals: a part that dies (PostgreSQL, Redis, the web, the worker, beat) is started again.

Each part is watched on every turn of the supervisor's loop. When one is found dead the terminal
says so in one line, the part is started again (at once the first time, then after 1, 2, 4, 8 s), and
once it answers again a second line says how long it was away. A part that dies more than
MAX_RESTARTS_PER_MINUTE times in a minute is not started again: the terminal says so in one sentence
and the bakery stops cleanly, instead of restarting it forever.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

MAX_RESTARTS_PER_MINUTE = 5
BACK_OFF_SECONDS = (0, 1, 2, 4, 8)
BACK_WITHIN_SECONDS = 120  # a part started again that does not answer within this counts as failing again


def clock() -> str:
    return f"{datetime.now():%H:%M:%S}"


class GaveUp(Exception):
    """A part kept dying: the sentence to end the bakery with."""


@dataclass
class Part:
    """One thing the bakery needs, how to tell it runs, how to start it again and when it answers."""

    name: str  # as the terminal says it: "PostgreSQL", "Redis", "the web", "the worker", "beat"
    alive: Callable[[], bool]
    start: Callable[[], None]
    answers: Callable[[], bool]
    log: str = ""  # where to look when it keeps dying
    waited: Callable[[float], str] = lambda since: ""  # ", 4 orders waited" when it is back
    down_at: float | None = None
    next_try: float = 0.0
    started_at: float | None = None
    restarts: collections.deque = field(default_factory=collections.deque)
    on_fire: bool = False  # taken away on purpose (bakery/demo_fire.py): back after its time, not counted

    def burn(self, seconds: float, now: float) -> None:
        """The part is being taken away on purpose: start it again ``seconds`` from ``now``. The
        caller says why in its own line; this start is not one of the restarts a minute allows."""
        self.down_at, self.next_try, self.started_at, self.on_fire = now, now + seconds, None, True

    def watch(self, say: Callable[[str], None], now: float) -> None:
        if self.down_at is None:
            if not self.alive():
                self.down_at = self.next_try = now
                say(f"{clock()}  {self.name} went away; starting it again")
            return
        if self.started_at is not None:
            if self.alive() and self.answers():
                say(f"{clock()}  {self.name} is back ({now - self.down_at:.0f} s){self.waited(self.down_at)}")
                self.down_at = self.started_at = None
                return
            if self.alive() and now - self.started_at < BACK_WITHIN_SECONDS:
                return
            self.started_at = None  # died again while starting, or never answered: another try
        if now < self.next_try:
            return
        if self.on_fire:
            self.on_fire, self.next_try = False, now  # its one planned start; a failed one counts as dying
        else:
            self.count_restart(now)
        try:
            self.start()
        except Exception as error:  # the next turn tries again, after the back-off
            why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            say(f"{clock()}  {self.name} did not start ({why}); trying again")
            return
        self.started_at = time.monotonic()

    def count_restart(self, now: float) -> None:
        while self.restarts and now - self.restarts[0] > 60:
            self.restarts.popleft()
        if len(self.restarts) >= MAX_RESTARTS_PER_MINUTE:
            raise GaveUp(f"{self.name} died {len(self.restarts) + 1} times within a minute, so the bakery stops "
                         f"instead of starting it again forever{'; see ' + self.log if self.log else ''}.")
        self.restarts.append(now)
        self.next_try = now + BACK_OFF_SECONDS[min(len(self.restarts), len(BACK_OFF_SECONDS) - 1)]
