"""The settings mypy's Django plugin loads (pyproject.toml [tool.django-stubs]): bakery.settings with
placeholder server names. The plugin reads the settings and the models and connects to nothing, so
it needs no running engines; a real DATABASE_URL, REDIS_URL or SECRET_KEY in the environment wins."""

import os
import secrets

for name, placeholder in {
    "DATABASE_URL": "postgres://typecheck@127.0.0.1:1/typecheck",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": secrets.token_urlsafe(32),  # made per run, like every install's
}.items():
    os.environ.setdefault(name, placeholder)

from bakery.settings import *  # noqa: E402, F403
