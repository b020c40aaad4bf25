"""A Python the bakery cannot run on gets one sentence from `make demo` and `make test`, before any
virtualenv or pip: which Pythons work and how to pick one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, installed_python

SENTENCE = "Freed's Bakery needs CPython 3.11 to 3.14"


def make(goal: str, python: str, venv: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    return subprocess.run(["make", "--no-print-directory", goal, f"PYTHON={python}", f"VENV={venv}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("goal", ["demo", "test"])
def test_an_old_python_gets_one_sentence_and_no_virtualenv(goal, tmp_path):
    python = installed_python("sys.version_info < (3, 11)", [f"python3.{minor}" for minor in range(10, 6, -1)],
                              "3.*")
    if python is None:
        pytest.skip("no CPython older than 3.11 on this machine to try")
    done = make(goal, python, tmp_path / "venv")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if not line.startswith("make:")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{SENTENCE}; {python} is CPython 3.")
    assert f"Pick one with `make {goal} PYTHON=python3.13`" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr and "pip" not in done.stdout + done.stderr
    assert not (tmp_path / "venv").exists()


def test_a_python_that_is_not_there_gets_the_same_sentence(tmp_path):
    done = make("demo", "python3.9-not-installed", tmp_path / "venv")
    assert done.returncode != 0
    assert f"{SENTENCE}, and there is no python3.9-not-installed here." in done.stderr
    assert not (tmp_path / "venv").exists()


def test_this_python_passes_the_check():
    done = subprocess.run([sys.executable, "bakery/supported.py", "test"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
