"""QR codes for the room's URL, so 40 phones join without anyone typing an address (segno)."""

from __future__ import annotations

import io

import segno


def _code(url: str):
    # micro=False: phone cameras read full QR codes; Micro QR is not widely supported.
    return segno.make(url, micro=False, error="m")


def qr_svg(url: str, *, scale: int = 1) -> str:
    """An inline <svg> element, ready to drop into a template (no file, no <?xml?> prologue)."""
    # omitsize: a viewBox instead of fixed width/height, so CSS can size it without cropping.
    return _code(url).svg_inline(scale=scale, dark="#1f1410", light="#ffffff", title=url, omitsize=True)


def qr_terminal(url: str) -> str:
    """The code drawn with half-block characters, two modules per character row, for a banner."""
    out = io.StringIO()
    _code(url).terminal(out=out, compact=True)
    return out.getvalue()
