"""The ASGI application `make demo` serves (gunicorn with uvicorn's h11 worker, as bakery.web extends it).

Under ASGI a tunnel hold is an ``asyncio.sleep`` around Django (bakery.storefront.tunnel.TunnelHoldApp):
it costs no thread and no database connection, so a room of hundreds waits side by side.
"""

import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpResponse

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
engines.start()


class BoundedRequestBody:
    """Every request's body is read here, before Django: what gunicorn's WSGI workers did, kept under
    ASGI, a clean end to a refused body, and no wait on a client that never finishes its body.

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
    * A body that has not arrived REQUEST_BODY_TIMEOUT_SECONDS after its headers is not waited for:
      the answer is ``408`` (problem+json ``request-timeout`` under /api/) with ``Connection: close``,
      so a client that sends half a request and waits keeps no request open in the bakery.
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.REQUEST_BODY_TIMEOUT_SECONDS
        chunks, size, more, disconnected = [], 0, True, False
        while more and size < limit + DISCARD_MAX_BYTES:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                return await _too_slow(scope, send)
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


async def _too_slow(scope, send) -> None:
    """The 408 for a body that did not arrive in time, and the connection closed after it."""
    detail = (f"The request body did not arrive within {settings.REQUEST_BODY_TIMEOUT_SECONDS} s of its headers. "
              "Send the whole request at once.")
    if scope["path"].startswith(API_PREFIX):
        response = problem("request-timeout", detail)
    else:
        response = HttpResponse(detail, status=408, content_type="text/plain; charset=utf-8")
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    headers += [(b"content-length", str(len(response.content)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


async def _never():
    """Wait until Django, having sent its answer, cancels the wait for a disconnect."""
    await asyncio.Future()


django_application = get_asgi_application()

from bakery.storefront.tunnel import TunnelHoldApp  # noqa: E402  (once Django is set up)
from orders.problems import API_PREFIX, problem  # noqa: E402

application = BoundedRequestBody(TunnelHoldApp(django_application))

if settings.DATABASE_POOL_WARM:
    from bakery.database.base import warm_in_background  # noqa: E402

    warm_in_background(settings.DATABASE_POOL_WARM)
