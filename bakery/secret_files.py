"""Secrets made per install and kept in the data folder (BAKERY_DATA_DIR, mode 0600).

Nothing secret is in the repository: a fresh clone makes its own ``SECRET_KEY`` on first start
(unless the environment gives one) and reuses it afterwards, so sessions and signed cookies
survive a restart but are never shared between two installs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bakery import engines

SECRET_KEY_FILE = "secret_key"


def private_file(name: str) -> Path:
    return engines.data_dir() / name


def write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write ``text`` readable by this user only. Without ``replace`` the write happens only if the
    file does not exist yet (web, worker and beat may start at the same moment: one of them wins,
    the others read its file). Returns whether this call wrote it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    try:
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # atomic, and fails if another process got there first
            return True
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)


def secret_key() -> str:
    """SECRET_KEY from the environment, else this install's own, made on first use."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = private_file(SECRET_KEY_FILE)
    if not path.exists():
        write_private(path, secrets.token_urlsafe(50), replace=False)
    return path.read_text().strip()
