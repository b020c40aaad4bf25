"""`make bench`: what idempotency costs, what it saves, and how the bakery compares to the peers.

Run with ``python -m tests.bench`` (``--quick`` for the short run). Not collected by pytest: the
numbers belong in docs/benchmarks.md, never in timed tests.
"""
