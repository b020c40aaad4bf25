"""``python -m tests.bench [--quick]``: install the peers if missing, then run the bench."""

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

PEER_MODULES = ["drf_idempotency", "drf_idempotencykey", "idempotency_key", "django_redis"]


def ensure_peers() -> None:
    """The peers are bench-only: installed into the venv here, never listed as product requirements."""
    if all(importlib.util.find_spec(name) for name in PEER_MODULES):
        return
    requirements = Path(__file__).with_name("requirements.txt")
    print(f"Installing the peer packages from {requirements} ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, under 2 minutes")
    parser.add_argument("--slow-seconds", type=float, default=40.0,
                        help="how long the slow handler runs (the retry arrives while it is still running)")
    parser.add_argument("--retry-after", type=float, default=35.0, help="when the retry of the slow request arrives")
    parser.add_argument("--no-doc", action="store_true", help="print the table but leave docs/benchmarks.md alone")
    args = parser.parse_args()
    ensure_peers()
    from tests.bench.run import main as run

    return run(quick=args.quick, slow_seconds=args.slow_seconds, retry_after=args.retry_after,
               write_doc=not args.no_doc)


if __name__ == "__main__":
    sys.exit(main())
