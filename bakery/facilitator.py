"""The facilitator's admin login: one superuser whose password is random per install.

The password is never in the repository. ``DEMO_ADMIN_PASSWORD`` sets it (docker compose reads
it from the ``.env`` file); otherwise the first ``load_initial_data`` makes a random one and keeps
it in the data folder (mode 0600), where the demo's banner and ``manage.py facilitator_password``
read it. ``manage.py facilitator_password --reset`` makes a new one.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from bakery import engines
from bakery.secret_files import write_private

PASSWORD_FILE = "facilitator.json"


def username() -> str:
    return os.environ.get("DEMO_ADMIN_USERNAME", "admin")


@dataclass(frozen=True)
class Login:
    username: str
    password: str | None  # None: set by hand since (in the admin); not known here
    source: str  # "environment", "data folder" or "set by hand"


def _password_file():
    return engines.data_dir() / PASSWORD_FILE


def _stored() -> dict:
    path = _password_file()
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _store(password: str | None) -> None:
    write_private(_password_file(), json.dumps({"username": username(), "password": password}),
                  replace=True)


def new_password() -> str:
    return secrets.token_urlsafe(12)


def facilitator_ensure() -> Login:
    """Make sure the facilitator's superuser exists with a password nobody else knows; return the login.

    An account from before this install kept its password in the data folder (an older install,
    or a restored database) gets a fresh random password, so no published one stays valid.
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
    stored = _stored()
    if "password" in stored and stored.get("username") == name and not created:
        if stored["password"] is None:
            return Login(name, None, "set by hand")
        if user.check_password(stored["password"]):
            return Login(name, stored["password"], "data folder")
        _store(None)  # changed in the admin since: keep the facilitator's choice, but we no longer know it
        return Login(name, None, "set by hand")
    return facilitator_password_reset()


def facilitator_password_reset() -> Login:
    """Give the facilitator a new random password (the old one stops working at once)."""
    name = username()
    user = get_user_model().objects.get(username=name)
    password = new_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    _store(password)
    return Login(name, password, "data folder")


def stored_login() -> Login | None:
    """What the demo's banner shows, read without Django: the environment's, or the data folder's."""
    if os.environ.get("DEMO_ADMIN_PASSWORD"):
        return Login(username(), os.environ["DEMO_ADMIN_PASSWORD"], "environment")
    stored = _stored()
    if "password" not in stored:
        return None
    return Login(stored.get("username") or username(), stored["password"],
                 "data folder" if stored["password"] else "set by hand")
