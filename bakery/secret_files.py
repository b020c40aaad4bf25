"""Secrets made per install and kept in the data folder (BAKERY_DATA_DIR), readable by this user only.

Nothing secret is in the repository: without ``SECRET_KEY`` in the environment, the entry points
(bakery.engines.start) take this install's own key, made here on the first start and reused
afterwards, so sessions and signed cookies survive a restart but no two installs share a key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_KEY_FILE = "secret_key"


def write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write ``text`` with mode 0600. Without ``replace`` the write happens only if the file does not
    exist yet (web, worker and beat may start at the same moment: one of them wins, the others read
    its file). Returns whether this call wrote it."""
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


def secret_key(folder: Path) -> str:
    """This install's SECRET_KEY, made in ``folder`` on first use."""
    path = folder / SECRET_KEY_FILE
    if not path.exists():
        write_private(path, secrets.token_urlsafe(50), replace=False)
    return path.read_text().strip()
