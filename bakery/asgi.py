"""The ASGI application `make demo` serves (gunicorn with uvicorn's h11 worker).

Under ASGI a tunnel hold is an ``asyncio.sleep`` (bakery.storefront.tunnel.TunnelHoldMiddleware):
it costs no thread and no database connection, so a room of hundreds waits side by side.
"""

import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
engines.start()


class BoundedRequestBody:
    """Two things gunicorn's WSGI workers did, kept under ASGI, and a clean end to a refused body.

    * A request body with no Content-Length (``Transfer-Encoding: chunked``) is read for Django,
      at most DATA_UPLOAD_MAX_MEMORY_SIZE + 1 bytes, and its length stated. Django reads exactly
      CONTENT_LENGTH bytes of a body, so without one it would see an empty body (an order would be
      refused as "items required"), and its ASGI handler would first spool however much the client
      sends. A longer body keeps a length over the limit, so Django refuses it exactly as it refuses
      a long body with a Content-Length (413). bakery.wsgi does the same for gunicorn's WSGI workers.
    * A body over the limit, with a Content-Length or chunked, is read to its end and dropped as it
      comes (never kept, never spooled) before Django answers its 413, so the answer comes after the
      whole request and the client's next request on the same connection is served. A body that goes
      on past DISCARD_MAX_BYTES is not read further: its 413 says ``Connection: close`` and the
      connection is closed.
    * A request the bakery has received whole is processed to its end even if the client goes
      away meanwhile. Django's ASGI handler cancels a request when its client disconnects; a phone
      that gives up in the tunnel would then, on a loaded machine, take back an order the bakery
      had already received but not yet baked (a response-lost attempt would turn into a lost
      request). So once the body is read, a disconnect is not passed on: the answer goes nowhere,
      as under WSGI, and a tunnel hold simply runs out.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
        stated = [value for name, value in scope["headers"] if name == b"content-length"]
        if stated and stated[0].isdigit() and int(stated[0]) < limit:
            return await self.app(scope, _received_whole(receive), send)
        chunks, size, more, disconnected = [], 0, True, False
        while more and size < limit + DISCARD_MAX_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                break
            if size < limit:
                chunks.append(message.get("body", b""))
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)[:limit]
        given = False

        async def replay():
            nonlocal given
            if disconnected:
                return {"type": "http.disconnect"}
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await receive()  # the disconnect (or nothing, until the answer is sent)
            return await _never()

        async def closing(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        headers = [(name, value) for name, value in scope["headers"] if name != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        return await self.app({**scope, "headers": headers}, replay, closing if more else send)


# How much of a refused body is read and dropped to keep its connection; past it the connection closes.
DISCARD_MAX_BYTES = 1024 * 1024


def _received_whole(receive):
    """``receive``, except that a disconnect after the whole body was received is never passed on."""
    whole = False

    async def wrapped():
        nonlocal whole
        if whole:
            await receive()  # the disconnect (or nothing, until the answer is sent)
            return await _never()
        message = await receive()
        whole = message["type"] == "http.request" and not message.get("more_body", False)
        return message

    return wrapped


async def _never():
    """Wait until Django, having sent its answer, cancels the wait for a disconnect."""
    await asyncio.Future()


application = BoundedRequestBody(get_asgi_application())
