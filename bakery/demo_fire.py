"""`make demo`'s side of the kitchen fire: take the part the facilitator asked for away, then bring it back.

Each turn of the supervisor's loop (bakery/demo.py) looks for a command from the dashboard
(bakery/kitchen_fire.py) and, when there is one:

- PostgreSQL or Redis: SIGKILLs the embedded engine, as a crash would, and tells the part's watcher
  (bakery/supervisor.py) to start it again after the fire's seconds instead of at once. The terminal
  says "PostgreSQL went away (kitchen fire, 10 s)", then the watcher's own "PostgreSQL is back (10 s);
  4 orders waited".
- The worker: arms a stall in the capture step (payments/stalls.py: the next capture stops once the
  provider has charged, before the bakery commits), waits for an order to be stopped there, SIGKILLs the
  worker, parent and children, and has it started again after the fire's seconds. The completer
  finishes that order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

from bakery import engines, kitchen_fire
from bakery.kitchen_fire import PARTS, WORKER_STEP, Fire
from bakery.supervisor import Part, clock

ARMED_FOR = 120  # seconds the armed worker waits for an order to reach its step before the fire is put out
PAUSED_FOR = 600  # how long the stalled step would wait; its worker is killed long before


def engine_pid(part: str) -> int | None:
    return engines.postgres_pid() if part == "postgres" else engines.redis_pid()


class KitchenFire:
    """The fire the supervisor is running, if any; one at a time."""

    def __init__(self, parts: list[Part], children: dict[str, subprocess.Popen], say: Callable[[str], None]):
        self.parts = {key: part for key, name in PARTS.items() for part in parts if part.name == name}
        self.children, self.say = children, say
        self.fire: Fire | None = None
        self.armed_at: float | None = None
        kitchen_fire.open_channel()

    def close(self) -> None:
        kitchen_fire.close_channel()

    def turn(self, now: float) -> None:
        if self.fire is not None and self.fire.back is None:
            self.follow(now)
        asked = kitchen_fire.take_command()
        if asked is not None:
            self.start(asked, now)

    def start(self, asked: dict, now: float) -> None:
        part, seconds = asked.get("part"), asked.get("seconds")
        if part not in PARTS or not isinstance(seconds, int) or not (
                kitchen_fire.MIN_SECONDS <= seconds <= kitchen_fire.MAX_SECONDS):
            return  # the web checks what it writes; anything else in the file is not a command
        if self.fire is not None and self.fire.back is None:
            self.say(f"{clock()}  (kitchen fire: {self.fire.name} is still away; {PARTS[part]} stays)")
            return
        self.fire = Fire(part=part, seconds=seconds, started=time.time())
        kitchen_fire.forget_waits()
        if part not in self.parts:  # a server the bakery was given, not one of its own to stop
            self.fire.back, self.fire.said = self.fire.started, (
                f"{PARTS[part]} is not this demo's own engine (it was given by URL), so the fire did not reach it")
            self.say(f"{clock()}  {self.fire.said}")
        elif part == "worker":
            self.arm_worker(now)
        else:
            self.parts[part].burn(seconds, now)
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(engine_pid(part), signal.SIGKILL)
            self.fire.said = f"{PARTS[part]} went away (kitchen fire, {seconds} s)"
            self.say(f"{clock()}  {self.fire.said}")
        kitchen_fire.record(self.fire)

    def follow(self, now: float) -> None:
        """Kill the armed worker once an order is inside its step; record when the part is back."""
        if self.armed_at is not None:
            from payments import stalls  # once the supervisor has set Django up (bakery.demo)

            stopped = stalls.taken(WORKER_STEP)
            if stopped is not None:
                self.kill_worker_inside(str(stopped.order_id), now)
            elif now - self.armed_at > ARMED_FOR:
                self.armed_at = None
                stalls.disarm(WORKER_STEP)
                self.fire.back, self.fire.said = time.time(), (
                    f"No order reached the worker's {WORKER_STEP} step within {ARMED_FOR} s: the fire went out, "
                    "and the worker carries on as before")
                self.say(f"{clock()}  {self.fire.said}")
                kitchen_fire.record(self.fire)
            return
        part = self.parts[self.fire.part]
        if part.down_at is None:
            self.fire.back = time.time()
            if self.fire.part == "postgres":
                self.fire.waited = kitchen_fire.waited_since(self.fire.started)
            kitchen_fire.record(self.fire)

    def arm_worker(self, now: float) -> None:
        from payments import stalls  # once the supervisor has set Django up (bakery.demo)

        stalls.arm(WORKER_STEP, PAUSED_FOR)
        self.armed_at = now
        self.fire.said = (f"The worker will die inside the next order's {WORKER_STEP} step "
                          f"(kitchen fire, {self.fire.seconds} s)")
        self.say(f"{clock()}  {self.fire.said}")

    def kill_worker_inside(self, order_id: str, now: float) -> None:
        self.armed_at = None
        worker = self.children["worker"]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)  # parent and prefork children, as a machine dying
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(5)
        self.parts["worker"].burn(self.fire.seconds, now)
        self.fire.said = (f"The worker went away inside #{order_id}'s {WORKER_STEP} step "
                          f"(kitchen fire, {self.fire.seconds} s)")
        self.say(f"{clock()}  {self.fire.said}")
        kitchen_fire.record(self.fire)
