"""The emails a worker really sent: Django's file-based backend, since the worker is another process."""

from __future__ import annotations

from pathlib import Path


class Mailbox:
    """The folder the file-based email backend writes to: each email ends with a line of 79 dashes."""

    SEPARATOR = "\n" + "-" * 79 + "\n"

    def __init__(self, path: Path):
        self.path = path

    def messages(self) -> list[str]:
        return [part for file in sorted(self.path.glob("*.log"))
                for part in file.read_text().split(self.SEPARATOR) if part.strip()]

    def count(self) -> int:
        return len(self.messages())
