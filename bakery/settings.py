"""Settings for Freed's Bakery, all from environment variables (see README "Configuration").

Settings describe; they start nothing. DATABASE_URL and REDIS_URL name the servers. Every entry
point (manage.py, bakery.wsgi/asgi, the Celery app, `make demo`, the test session) first calls
bakery.engines.start(), which starts real embedded PostgreSQL and Redis when they are unset, so a
laptop without services still runs the real thing.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from bakery import connections
from bakery.env import env_bool, env_list

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "bakery",
    "orders",
    "payments",
]

MIDDLEWARE = [
    # Outermost: it lends each request the place its tunnel hold goes (under ASGI the hold is waited
    # out around Django, by bakery.storefront.tunnel.TunnelHoldApp; under WSGI here).
    "bakery.storefront.tunnel.TunnelHoldMiddleware",
    "orders.problems.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "bakery.outage.DatabaseOutageMiddleware",
    "bakery.cookies.SessionCookieGuard",
    "bakery.querystring.QueryStringGuard",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orders.customers.CustomerMiddleware",
    "bakery.storefront.tunnel.TunnelMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "bakery.urls"
WSGI_APPLICATION = "bakery.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def env_required(name: str) -> str:
    if not os.environ.get(name):
        raise ImproperlyConfigured(
            f"{name} is not set. Start the bakery through an entry point (manage.py, make demo, gunicorn "
            f"bakery.wsgi, celery -A bakery), which starts the embedded engines, or set {name}."
        )
    return os.environ[name]


# Connections are bounded by design: a web process borrows from a pool of at most
# DATABASE_POOL_SIZE connections (Django 5.2's psycopg pool), whatever its thread count, and a
# thread that finds them all busy waits up to DATABASE_POOL_TIMEOUT seconds for one. 0 turns the
# pool off: one connection per thread, closed after each request or task (Celery's prefork
# children run one task at a time, so `make demo` gives them no pool). `make demo` checks the
# total against PostgreSQL's max_connections before it starts anything (bakery/connections.py).
DATABASE_POOL_SIZE = int(os.environ.get("DATABASE_POOL_SIZE", 8))
DATABASE_POOL_TIMEOUT = float(os.environ.get("DATABASE_POOL_TIMEOUT", 10))
# Connections a web process opens as it starts, before its first request (bakery/database/base.py:
# warm). The pool grows one connection at a time, and under a room's load each one waits its turn for
# the process's GIL: a cold demo met by a room of 200 had requests waiting up to 2.7 s for a
# connection. The pool's min_size stays 0, so these are not refilled after an outage, and a pool
# left idle gives one back every ten minutes. `make demo` sets it (bakery/demo.py: WEB_POOL_WARM).
DATABASE_POOL_WARM = int(os.environ.get("DATABASE_POOL_WARM", 0))
PROVIDER_POOL_SIZE = connections.PROVIDER_POOL_SIZE
# A server that does not answer a connection attempt within this many seconds is taken as away.
DATABASE_CONNECT_TIMEOUT = int(os.environ.get("DATABASE_CONNECT_TIMEOUT", 2))


_DATABASE_URL = env_required("DATABASE_URL")


def _database_alias(pool_size: int) -> dict:
    database = dj_database_url.parse(_DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    # Django's backend, failing at once while PostgreSQL is away instead of waiting on the pool
    # (bakery/database/): the web tier then answers 503 database-unavailable (bakery/outage.py).
    database["ENGINE"] = "bakery.database"
    database.setdefault("OPTIONS", {})["connect_timeout"] = DATABASE_CONNECT_TIMEOUT
    # Django turns psycopg's prepared statements off by default; a threshold turns them back on for
    # the cursors that ask (the idempotency layer's, orders/idempotency.py). Django's own cursors
    # bind on the client and are never prepared, whatever the threshold.
    database.setdefault("OPTIONS", {})["prepare_threshold"] = 5
    if DATABASE_POOL_SIZE > 0:
        # min_size 0: an idle process keeps no connection open, so the ceiling is only max_size.
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 0, "max_size": pool_size, "timeout": DATABASE_POOL_TIMEOUT,
            # A connection the pool failed to make is retried for this long, not five minutes: once
            # PostgreSQL is back, a fresh attempt is made at once instead of after a long back-off.
            "reconnect_timeout": 2,
        }
    return database


DATABASES = {
    "default": _database_alias(DATABASE_POOL_SIZE),
    # The fake payment provider is "another company": it writes through its own connection, so
    # a charge it made survives a rollback of the bakery's transaction, as a real one would.
    "provider": _database_alias(PROVIDER_POOL_SIZE),
}

REDIS_URL = env_required("REDIS_URL")

# From the environment: docker compose reads it from .env; otherwise the entry point puts this
# install's own there (made on the first start in the data folder, mode 0600). Never a value
# from the repository.
SECRET_KEY = env_required("SECRET_KEY")

CACHES = {
    "default": {
        # A dead Redis is a cache miss, not an error: taking orders never depends on it (bakery/cache.py).
        "BACKEND": "bakery.cache.FailSoftRedisCache",
        "LOCATION": REDIS_URL,
    }
}

# Sessions are for staff logins (the admin, the workshop dashboard, /metrics): a customer is known
# by a signed cookie of its own and never reads one (orders/customers.py). They live in PostgreSQL
# alone, so a login works while Redis is down, and a login or logout made during an outage cannot
# be undone by a stale cached copy once Redis is back (which cached_db on a cache that fails soft
# would allow). The customer cookie lasts as long as a session would.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# --- Admin login throttle (django-axes) -------------------------------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one user name from one address, that pair is
# refused (429) for AXES_COOLOFF_TIME. Keyed by name *and* address, so a learner hammering
# "admin" locks only themselves out, never the facilitator on their own machine.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin_locked.html"
AXES_VERBOSE = False

# --- Browser security headers ------------------------------------------------------------------
# X-Frame-Options DENY, nosniff, Referrer-Policy same-origin and HttpOnly/SameSite session
# cookies are Django's defaults. The Content-Security-Policy allows scripts from this origin
# only: no inline script, no event-handler attribute, no CDN. Styles may be inline (the
# timeline positions its rows with style attributes; Swagger UI ships a <style> block).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# A CSRF failure on an API path answers problem+json like the rest of the API.
CSRF_FAILURE_VIEW = "orders.problems.csrf_failure"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Only docker/production run collectstatic (into STATIC_ROOT); the demo serves from the finders.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files from the finders too, so the demo needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A request body over 64 KiB is refused with 413 before any work is done.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
# How long the ASGI web tier waits for a request's body once its headers are in (bakery/asgi.py): then 408.
REQUEST_BODY_TIMEOUT_SECONDS = float(os.environ.get("REQUEST_BODY_TIMEOUT_SECONDS", 5))
# How long it waits for a request's headers (bakery/web.py): then 408, or a silent close if nothing came.
REQUEST_HEADER_TIMEOUT_SECONDS = float(os.environ.get("REQUEST_HEADER_TIMEOUT_SECONDS", 5))

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# Only read by the file-based backend (tests count the emails a worker really sent).
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH")
DEFAULT_FROM_EMAIL = "orders@freeds-bakery.example"

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # JSON only, checked for what PostgreSQL can store (orders/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["orders.parsers.StorableJSONParser"],
    "EXCEPTION_HANDLER": "orders.problems.problem_exception_handler",
    # The bakery faces clients directly (gunicorn, no proxy in front): X-Forwarded-For is the
    # client's own claim, so throttles key on the connection's address.
    "NUM_PROXIES": 0,
}

# Orders one customer may place (POST /api/orders/, retries included): "N/sec|min|hour|day", or
# "off". Over either: 429 problem+json with Retry-After (orders/throttles.py). The burst rate
# keeps one script's hundred-at-once from filling every web thread.
ORDER_THROTTLE_RATE = os.environ.get("ORDER_THROTTLE_RATE", "60/min")
ORDER_BURST_RATE = os.environ.get("ORDER_BURST_RATE", "10/sec")
# New customers one client address may make (orders/customers.py). A phone on the room's Wi-Fi has
# its own address and makes one (three with the compare page); "off" for a room behind one address.
CUSTOMER_CREATION_RATE = os.environ.get("CUSTOMER_CREATION_RATE", "120/min")
# The bakery's own machine is not counted: nobody in the room reaches it from there, and the
# facilitator's tunnel CLI makes a whole room of learners from it (manage.py tunnel --participants).
CUSTOMER_CREATION_UNCOUNTED = ("127.0.0.1", "::1")

SPECTACULAR_SETTINGS = {
    "TITLE": "Freed's Bakery order API",
    "DESCRIPTION": (
        "Order cakes safely through a tunnel. `POST /api/orders/` follows the IETF "
        "Idempotency-Key draft: send a UUID in the `Idempotency-Key` header and retry with the "
        "same key as often as you like; the bakery bakes once and replays the first answer."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from this origin (drf-spectacular-sidecar): works offline, runs no CDN's script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Idempotency ------------------------------------------------------------------------------
# How long a finished key is kept; older keys are purged by a beat task and then count as new.
IDEMPOTENCY_KEY_TTL = float(os.environ.get("IDEMPOTENCY_KEY_TTL", 24 * 60 * 60))
# How long a retry waits for a first request with the same key that is still running before it
# gets 409 Conflict + Retry-After. The wait is PostgreSQL's own lock wait on the key's row. It ends
# well inside the client's own timeout (TUNNEL_CLIENT_TIMEOUT_SECONDS, 2.5 s): with a room of 200 in
# the slow bakery on a laptop, a 2 s wait plus a loaded machine's delay came after the phone had given
# up (78 of 200 learners had a retry time out outside the tunnel; 6 with 1 s).
IDEMPOTENCY_WAIT_SECONDS = float(os.environ.get("IDEMPOTENCY_WAIT_SECONDS", 1.0))
IDEMPOTENCY_PURGE_BATCH = int(os.environ.get("IDEMPOTENCY_PURGE_BATCH", 5000))
# How often beat runs the purge. A short TTL only means something with a purge that keeps up.
IDEMPOTENCY_PURGE_INTERVAL_SECONDS = float(os.environ.get("IDEMPOTENCY_PURGE_INTERVAL_SECONDS", 600))

# --- Fulfilment: the completer (payments/completer.py) ----------------------------------------
# An order on its way with no sign of life (no checkpoint, attempt or retry) for this long has its
# next step re-sent. The longest quiet gap of a healthy pipeline is a payment retry's backoff
# (at most 8 s), so 10 s never resumes a step that is merely waiting for its retry.
FULFILMENT_STALL_SECONDS = float(os.environ.get("FULFILMENT_STALL_SECONDS", 10))
# Each resumption waits twice as long as the one before; after this many the order stops in
# fulfilment_failed with the reason (with the defaults, after about ten quiet minutes).
FULFILMENT_MAX_RESUMPTIONS = int(os.environ.get("FULFILMENT_MAX_RESUMPTIONS", 5))

# --- Metrics (/metrics, Prometheus text format; see orders/metrics.py) --------------------------
# Staff sessions may always read /metrics; a scraper has no session, so its address goes here.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "")
# Made and emptied by the entry points (make demo, the tests, docker compose) so that every gunicorn
# and Celery process writes its duration histograms where /metrics can sum them.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# --- Conformance fixture (bakery/conformance.py) ------------------------------------------------
# Serve the public conformance suite's fixture routes under /conformance/ (tests and make demo).
CONFORMANCE_FIXTURE = env_bool("CONFORMANCE_FIXTURE", False)
# How long a duplicate waits there for a first request still running before 409. The draft
# answers a duplicate in flight with 409 at once; the order API waits IDEMPOTENCY_WAIT_SECONDS.
CONFORMANCE_WAIT_SECONDS = float(os.environ.get("CONFORMANCE_WAIT_SECONDS", 0))

# --- Tunnel simulator (bakery/storefront/tunnel.py) -----------------------------------------------------
TUNNEL_SIMULATOR_ENABLED = env_bool("TUNNEL_SIMULATOR_ENABLED", True)
# The browser gives up on an attempt after this long (its fetch timeout)...
TUNNEL_CLIENT_TIMEOUT_SECONDS = float(os.environ.get("TUNNEL_CLIENT_TIMEOUT_SECONDS", 2.5))
# ...so the tunnel holds a lost answer longer than that, and the slow bakery is slower than that.
TUNNEL_HOLD_SECONDS = float(os.environ.get("TUNNEL_HOLD_SECONDS", 5))
TUNNEL_SLOW_SECONDS = float(os.environ.get("TUNNEL_SLOW_SECONDS", 4))
# Called with the request inside the order handler, while the order's key is claimed
# (orders/placing.py: order_answer): the tunnel's slow bakery is slow there.
ORDER_HANDLER_HOOKS = ["bakery.storefront.tunnel.slow_bakery"]
# Each held request holds a web thread: one customer may have at most this many in the tunnel at
# once (browser retries overlap by two at most); past it the tunnel answers 429 at once.
TUNNEL_MAX_HOLDS = int(os.environ.get("TUNNEL_MAX_HOLDS", 3))

# --- How a client retries an order (the simulator page and `manage.py tunnel`) --------------
# Exponential backoff with "equal jitter": retry n waits between half and all of
# min(CAP, BASE * 2^(n-1)) seconds, starting no sooner than the Retry-After of a 409, 429 or 503
# (static/js/retry.js says why); at most MAX_ATTEMPTS automatic retries. The pages hand these to the
# phones in data-* attributes, so they are set here only.
CLIENT_RETRY_BASE_SECONDS = float(os.environ.get("CLIENT_RETRY_BASE_SECONDS", 1.0))
CLIENT_RETRY_CAP_SECONDS = float(os.environ.get("CLIENT_RETRY_CAP_SECONDS", 8.0))
CLIENT_RETRY_MAX_ATTEMPTS = int(os.environ.get("CLIENT_RETRY_MAX_ATTEMPTS", 8))

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True  # a task is acknowledged after it ran, not when it was received
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a worker killed mid-task puts the task back
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
# Redis redelivers an unacknowledged task after this many seconds. It must exceed the longest
# step (a slow provider plus retry countdowns are well under 30 s); an early redelivery is
# harmless anyway because every task dedupes on the order's key.
CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 30))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # A worker looks for such tasks every interval x throttle seconds; kombu's 10 x 10 would
    # leave a dead worker's task waiting up to 100 s more. Look every 5 s instead.
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {"task": "payments.relay_outbox", "schedule": 2.0},
    "complete-stranded-orders": {"task": "payments.complete_stranded", "schedule": 5.0},
    "purge-expired-idempotency-keys": {"task": "orders.purge_expired_keys",
                                       "schedule": IDEMPOTENCY_PURGE_INTERVAL_SECONDS},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {"bakery": {"level": "INFO"}, "orders": {"level": "INFO"}, "payments": {"level": "INFO"}},
}
