"""Bench only: the order endpoint guarded by django-idempotency-key 1.3.0, configured as its README
says for several processes: responses in the Redis cache, the multi-process Redis lock."""

from bakery.settings import *  # noqa: F403

MIDDLEWARE = [*MIDDLEWARE, "idempotency_key.middleware.ExemptIdempotencyKeyMiddleware"]  # noqa: F405
ROOT_URLCONF = "tests.bench.peers.urls_django_idempotency_key"
IDEMPOTENCY_KEY = {
    # Replay the stored status (201) instead of the package's default 409, like the others do.
    "CONFLICT_STATUS_CODE": None,
    "STORAGE": {"CLASS": "idempotency_key.storage.CacheKeyStorage", "CACHE_NAME": "default"},
    "LOCK": {
        "CLASS": "idempotency_key.locks.redis.MultiProcessRedisLock",
        "LOCATION": REDIS_URL,  # noqa: F405
        "NAME": "bench-idempotency-key-lock",
    },
}
