"""The supervisor's promise for one part that keeps dying: started again with back-off, a bounded
number of times a minute, then one sentence instead of restarting it forever."""

from __future__ import annotations

import subprocess
import time

import pytest

from bakery.supervisor import MAX_RESTARTS_PER_MINUTE, GaveUp, Part


def test_a_part_that_keeps_dying_is_started_again_with_back_off_then_given_up_in_one_sentence():
    started: list[float] = []
    process = {"now": subprocess.Popen(["true"])}  # a process that exits at once

    def start():
        started.append(time.monotonic())
        process["now"] = subprocess.Popen(["true"])

    part = Part("Beat", lambda: process["now"].poll() is None, start, lambda: True, log="beat.log")
    said: list[str] = []
    process["now"].wait()
    with pytest.raises(GaveUp) as gave_up:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            part.watch(said.append, time.monotonic())
            time.sleep(0.05)
    assert len(started) == MAX_RESTARTS_PER_MINUTE
    gaps = [round(later - earlier) for earlier, later in zip(started, started[1:], strict=False)]
    assert gaps == [1, 2, 4, 8][:len(gaps)]  # at once, then waiting longer each time
    assert str(gave_up.value) == (f"Beat died {MAX_RESTARTS_PER_MINUTE + 1} times within a minute, so the bakery "
                                  "stops instead of starting it again forever; see beat.log.")
    assert said[0].endswith("  Beat went away; starting it again")
    assert not any("is back" in line for line in said)


def test_a_part_set_on_fire_comes_back_after_its_seconds_and_fires_never_make_the_bakery_give_up():
    """The facilitator may set the kitchen on fire more often than a crash is allowed a minute."""
    process = {"now": subprocess.Popen(["sleep", "60"])}
    started: list[float] = []

    def start():
        started.append(time.monotonic())
        process["now"] = subprocess.Popen(["sleep", "60"])

    part = Part("Redis", lambda: process["now"].poll() is None, start, lambda: True)
    said: list[str] = []
    try:
        for _ in range(MAX_RESTARTS_PER_MINUTE + 2):
            burnt_at = time.monotonic()
            part.burn(0.3, burnt_at)
            process["now"].kill()
            process["now"].wait()
            while part.down_at is not None:
                part.watch(said.append, time.monotonic())
                time.sleep(0.02)
            assert 0.3 <= started[-1] - burnt_at < 1.5  # after its seconds, not at once
    finally:
        process["now"].kill()
    assert len(started) == MAX_RESTARTS_PER_MINUTE + 2
    assert not any("went away; starting it again" in line for line in said)  # the fire says its own line
    assert sum(line.endswith("  Redis is back (0 s)") for line in said) == MAX_RESTARTS_PER_MINUTE + 2
