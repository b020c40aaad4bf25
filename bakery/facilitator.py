"""The facilitator's admin login: one superuser whose password is random per install.

The password is never in the repository. ``DEMO_ADMIN_PASSWORD`` sets it (docker compose reads
it from the ``.env`` file); otherwise the first ``load_initial_data`` makes a random one and keeps
it in the data folder (``facilitator.json``, mode 0600), one entry per database (the demo's and
the bench's share a data folder), where ``manage.py facilitator_password`` reads it; the demo's
banner prints it too, but only when it serves loopback alone (serving the room, it is projected).
``manage.py facilitator_password --reset`` makes a new one.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model

from bakery import engines
from bakery.secret_files import write_private

PASSWORD_FILE = "facilitator.json"


def username() -> str:
    return os.environ.get("DEMO_ADMIN_USERNAME", "admin")


@dataclass(frozen=True)
class Login:
    username: str
    password: str | None  # None: changed by hand (in the admin) since, so not known here
    source: str  # "environment", "data folder" or "set by hand"


def _database() -> str:
    database = settings.DATABASES["default"]
    return f"{database['NAME']}@{database['HOST']}:{database['PORT']}"


def _stored() -> dict:
    """``{database: {"username": …, "password": … or None}}`` from the data folder."""
    try:
        return json.loads((engines.data_dir() / PASSWORD_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _store(password: str | None) -> None:
    logins = _stored()
    logins[_database()] = {"username": username(), "password": password}
    write_private(engines.data_dir() / PASSWORD_FILE, json.dumps(logins, indent=1), replace=True)


def new_password() -> str:
    return secrets.token_urlsafe(12)


def facilitator_ensure() -> Login:
    """Make sure the facilitator's superuser exists with a password nobody else knows; return the login.

    An account this install has no password of its own for (made by an older version with a
    published password, or a restored database) gets a fresh random one, so no published password
    stays valid. A password changed in the admin since is kept, and reported as not known here.
    """
    User = get_user_model()
    name = username()
    user = User.objects.filter(username=name).first()
    created = user is None
    if created:
        user = User.objects.create_superuser(name, f"{name}@freeds-bakery.example", None)
    wanted = os.environ.get("DEMO_ADMIN_PASSWORD")
    if wanted:
        if not user.check_password(wanted):
            user.set_password(wanted)
            user.save(update_fields=["password"])
        return Login(name, wanted, "environment")
    stored = _stored().get(_database())
    stored = stored if isinstance(stored, dict) else {}
    if created or "password" not in stored or stored.get("username") != name:
        return facilitator_password_reset()
    if stored["password"] is not None and user.check_password(stored["password"]):
        return Login(name, stored["password"], "data folder")
    if stored["password"] is not None:
        _store(None)  # changed in the admin since: the facilitator's choice stands, unknown to us
    return Login(name, None, "set by hand")


def facilitator_password_reset() -> Login:
    """Give the facilitator a new random password (the old one stops working at once)."""
    name = username()
    user = get_user_model().objects.get(username=name)
    password = new_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    _store(password)
    return Login(name, password, "data folder")
