"""The API's body parser: JSON the bakery can store, or a clear 400.

DRF's JSONParser hands on whatever ``json.loads`` returns. Three kinds of valid-looking JSON
would then fail deep inside the bakery with a 500 instead of a 400 at the door:

* a NUL character (``\\u0000``): PostgreSQL text cannot hold one, so a lookup or insert raises;
* a lone surrogate (``\\ud800``): not encodable as UTF-8, so the key's fingerprint cannot be made;
* a body nested thousands of levels deep: Python's recursion limit stops the decoder.

So the body is checked once, here, and every view after it sees only storable text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# An order is three levels deep ({"items": [{"cake": …}]}); sixteen leaves room for any honest body.
MAX_DEPTH = 16


class UnstorableBody(ParseError):
    """Valid JSON that the bakery refuses: too deep, or text PostgreSQL and UTF-8 cannot carry."""


def text_problem(text: str) -> str | None:
    """What makes ``text`` unstorable in PostgreSQL or unencodable as UTF-8, or None when it is fine."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (such as \\ud800), which is not valid Unicode text"
    return None


def check_storable(data: object) -> None:
    """Walk the parsed body without recursion; raise :class:`UnstorableBody` naming the first bad place."""
    stack: list[tuple[object, str, int]] = [(data, "body", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnstorableBody(f"The body nests more than {MAX_DEPTH} levels deep (at {path}).")
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise UnstorableBody(f"The text at {path} {problem}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    raise UnstorableBody(f"A field name in {path} {problem}.")
                stack.append((item, f"{path}.{key}" if path != "body" else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


class StorableJSONParser(JSONParser):
    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise UnstorableBody(f"The body nests more than {MAX_DEPTH} levels deep.") from None
        check_storable(data)
        return data
