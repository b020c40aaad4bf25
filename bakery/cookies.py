"""Cookies a browser or a script can send are read with care: a bad one is a stranger, not a 500."""

from __future__ import annotations

import re

from django.conf import settings

# Django makes session keys of lowercase letters and digits (get_random_string with its
# VALID_KEY_CHARS); anything else cannot be a session it issued.
SESSION_KEY_SHAPE = re.compile(r"[a-z0-9]{8,64}")


class SessionCookieGuard:
    """Forget a session cookie Django could never have set.

    The session store looks the key up in Redis and PostgreSQL as it is, and PostgreSQL refuses
    text with a NUL in it: a cookie such as ``sessionid="abc\\000…"`` made every page that reads
    the session fail for that client. Dropped here, the client is simply a new visitor.
    Sits before SessionMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = settings.SESSION_COOKIE_NAME
        value = request.COOKIES.get(name)
        if value is not None and not SESSION_KEY_SHAPE.fullmatch(value):
            del request.COOKIES[name]
        return self.get_response(request)
