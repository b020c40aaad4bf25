"""The test session's entry point: start the engines for this pytest process, then the project's settings.

bakery.settings only describes; each entry point starts the engines first. pytest-django loads the
settings before any conftest, so the test session does it here (Makefile: BAKERY_DATA_DIR=.local/test).
Processes the tests start (gunicorn, Celery workers) get DATABASE_URL/REDIS_URL and bakery.settings.
"""

from bakery import engines

engines.start()

from bakery.settings import *  # noqa: E402, F403
