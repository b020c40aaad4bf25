"""Fault drills' fixtures: the stack of processes a module's drills share, and the drills' table,
printed at the end of the run and written to artifacts/chaos.md. The helpers are tests/chaos/drills.py."""

from __future__ import annotations

import pytest

from tests.chaos.drills import RESULTS, Stack, embedded_engines_only
from tests.processes import ARTIFACTS


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    header = ["fault", "orders accepted", "lost", "duplicated", "stranded", "seconds to recover", "note"]
    rows = [[r.fault, r.accepted, r.lost, r.duplicated, r.stranded, f"{r.recover_seconds:.1f}", r.note]
            for r in RESULTS]
    table = "\n".join("| " + " | ".join(str(cell) for cell in row) + " |"
                      for row in [header, ["---"] * len(header), *rows])
    terminalreporter.write_sep("=", "fault drills")
    terminalreporter.write_line(table)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "chaos.md").write_text(table + "\n")


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    embedded_engines_only()
    running = Stack(tmp_path_factory.mktemp("chaos")).start()
    yield running
    running.stop()


@pytest.fixture
def drill_stack(stack, transactional_db, cake):
    stack.clean()
    if stack.worker is None or stack.worker.process.poll() is not None:
        stack.start_worker()
    yield stack
    stack.kill_others()  # a drill that failed half-way leaves no paused worker holding locks
