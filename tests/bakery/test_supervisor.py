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
