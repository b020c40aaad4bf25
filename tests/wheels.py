"""Does every package a lock pins come as a wheel for each system and Python the bakery supports?

pip itself answers, pair by pair: ``pip install --dry-run --only-binary=:all: --platform … --python-version …``
on the lock's pins for that system (each pin's environment marker evaluated for it), reading
PyPI only (not this machine's pip configuration). The wheel pip picks must also carry one of the
lock's hashes, so ``--require-hashes`` installs it on that system.

    python -m tests.wheels                       # the matrix for requirements/dev.txt
    python -m tests.wheels requirements.txt      # for another lock or a plain requirements file

tests/test_wheels.py fails on any gap, naming the package and the system.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"

# The wheel tags each system accepts: Linux with glibc 2.28 or newer, macOS 11 or newer on Apple silicon.
_GLIBC = [f"manylinux_2_{minor}" for minor in range(17, 29)]
SYSTEMS = {
    "macOS arm64": {"platforms": ["macosx_11_0_arm64", "macosx_15_0_arm64", "macosx_15_0_universal2"],
                    "markers": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"}},
    "Linux x86_64": {"platforms": ["manylinux2014_x86_64", *(f"{tag}_x86_64" for tag in _GLIBC)],
                     "markers": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}},
    "Linux aarch64": {"platforms": ["manylinux2014_aarch64", *(f"{tag}_aarch64" for tag in _GLIBC)],
                      "markers": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"}},
}
PYTHONS = ("3.11", "3.12", "3.13", "3.14")


@dataclass
class Pin:
    requirement: Requirement
    hashes: set[str]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


def read_pins(lock: Path) -> list[Pin]:
    """The lock's requirements (``name==version ; marker --hash=sha256:…``), continuation lines joined."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    pins = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        pins.append(Pin(Requirement(re.sub(r"\s--hash=\S+", "", line).strip()), hashes))
    return pins


def environment(system: str, python: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "os_name": "posix", **SYSTEMS[system]["markers"]}


def _pip_environment() -> dict[str, str]:
    """pip with no configuration file and no local wheel folders or indexes: PyPI only."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PIP_") or key in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def check(pins: list[Pin], system: str, python: str) -> list[str]:
    """What stops these pins installing as wheels on ``system`` with CPython ``python``: empty if nothing."""
    wanted = [pin for pin in pins if pin.requirement.marker is None
              or pin.requirement.marker.evaluate(environment(system, python))]
    with tempfile.TemporaryDirectory(prefix="bakery-wheels-") as folder:
        requirements, report = Path(folder) / "requirements.txt", Path(folder) / "report.json"
        lines = []
        for pin in wanted:
            requirement = Requirement(str(pin.requirement))
            requirement.marker = None
            lines.append(str(requirement))
        requirements.write_text("\n".join(lines) + "\n")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                   "--quiet", "--disable-pip-version-check", "--index-url", PYPI, "--only-binary=:all:",
                   "--python-version", python, "--implementation", "cp", "--report", str(report),
                   *(arg for tag in SYSTEMS[system]["platforms"] for arg in ("--platform", tag)),
                   "-r", str(requirements)]
        done = subprocess.run(command, capture_output=True, text=True, env=_pip_environment(), timeout=600)
        if done.returncode != 0:
            missing = re.search(r"satisfies the requirement (\S+)", done.stderr)
            if missing:
                return [f"{missing.group(1)} has no wheel for {system} on CPython {python}"]
            return [f"pip failed for {system} on CPython {python}: {done.stderr.strip()[-600:]}"]
        chosen = {canonicalize_name(item["metadata"]["name"]): item["download_info"]
                  for item in json.loads(report.read_text())["install"]}
    problems = []
    for pin in wanted:
        info = chosen.get(pin.name)
        if info is None:
            problems.append(f"{pin.requirement} was not resolved for {system} on CPython {python}")
            continue
        digest = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        if pin.hashes and digest not in pin.hashes:
            problems.append(f"{pin.requirement}: the wheel for {system} on CPython {python} "
                            f"({info['url'].rsplit('/', 1)[-1]}) has no hash in the lock")
    return problems


def matrix(lock: Path) -> dict[tuple[str, str], list[str]]:
    pins = read_pins(lock)
    pairs = [(system, python) for system in SYSTEMS for python in PYTHONS]
    with ThreadPoolExecutor(4) as pool:  # pip waits on PyPI most of the time
        return dict(zip(pairs, pool.map(lambda pair: check(pins, *pair), pairs), strict=True))


def main(argv: list[str]) -> int:
    lock = Path(argv[0]) if argv else ROOT / "requirements" / "dev.txt"
    results = matrix(lock)
    print(f"{lock}: wheels for every pin")
    print("| system | " + " | ".join(f"CPython {python}" for python in PYTHONS) + " |")
    print("| --- |" + " --- |" * len(PYTHONS))
    for system in SYSTEMS:
        cells = ["yes" if not results[system, python] else "no: " + results[system, python][0].split(" ", 1)[0]
                 for python in PYTHONS]
        print(f"| {system} | " + " | ".join(cells) + " |")
    good = sum(not problems for problems in results.values())
    print(f"{good} of {len(results)} pairs install")
    for problems in results.values():
        for problem in problems:
            print("  " + problem)
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
