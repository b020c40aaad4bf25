"""Bench-only wiring of the peer packages around the bakery's own order handler.

Each peer protects the same handler (validate, ``order_place``, serialize) with nothing of the
bakery's idempotency layer: the order is stored with ``idempotent=False`` so the bakery's unique
constraint does not help the peer, and with the key so the bench can count orders per key.
"""
