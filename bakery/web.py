"""The web tier's worker: uvicorn's pure-Python h11 worker, with a deadline on request heads and the
server's own refusals in the bakery's words.

gunicorn runs it (``--worker-class bakery.web.BakeryH11Worker``, see bakery.demo). What it adds to
uvicorn's ``H11Protocol``:

* A request's head (request line and headers) is due within REQUEST_HEADER_TIMEOUT_SECONDS: counted
  from the connection's opening for its first request, and from the first byte of each later one
  (between requests, uvicorn's keep-alive timeout closes an idle connection, as before). A head
  still unfinished then is answered ``408`` with ``Connection: close``; a connection that sent
  nothing at all is closed without a word. uvicorn has no such timeout, so half a head once kept
  its connection open until the client closed it.
* What uvicorn answers itself, a request h11 cannot parse, says so in problem+json under /api/
  (``invalid-request``; ``request-timeout`` for the 408), and in plain text elsewhere. A head over
  h11's 16 KiB bound is a ``431``, as h11 suggests, not uvicorn's ``400``.

The body has its own deadline, REQUEST_BODY_TIMEOUT_SECONDS, in bakery.asgi.
"""

from __future__ import annotations

import asyncio

import h11
from django.conf import settings
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # as uvicorn's H11Protocol reads it
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn_worker import UvicornH11Worker  # type: ignore[import-untyped]

# Enough of a head to read its request target's first characters (is it under /api/?).
HEAD_START_BYTES = 256


class _Connection(h11.Connection):
    """h11's server side, remembering why it last refused the peer (uvicorn keeps only "invalid")."""

    refusal: h11.RemoteProtocolError | None = None

    def next_event(self):
        try:
            return super().next_event()
        except h11.RemoteProtocolError as error:
            self.refusal = error
            raise


class BakeryH11Protocol(H11Protocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size
        self.conn: _Connection = _Connection(h11.SERVER, DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if size is None else size)
        self.header_timeout = settings.REQUEST_HEADER_TIMEOUT_SECONDS
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_start: bytes | None = None  # the start of the head being read, None once it is whole

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        reading_head = self.conn.their_state is h11.IDLE
        self.head_start = self.conn.trailing_data[0][:HEAD_START_BYTES] if reading_head else None
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()
        elif self.conn.trailing_data[0]:
            self._start_head_timer()  # part of a head is in, the rest is due

    def send_400_response(self, msg: str) -> None:
        """A request h11 could not parse (uvicorn's "Invalid HTTP request received.")."""
        if getattr(self.conn.refusal, "error_status_hint", 400) == 431:
            self._refuse(431, "invalid-request", "The request line and headers are over 16 KiB.")
        else:
            self._refuse(400, "invalid-request", "The request is not valid HTTP/1.1.")

    def _start_head_timer(self) -> None:
        if self.head_timer is None and self.header_timeout > 0:
            self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.head_start = self.conn.trailing_data[0][:HEAD_START_BYTES]
        if not self.head_start:
            self.conn.send(h11.ConnectionClosed())
            self.transport.close()
            return
        self._refuse(408, "request-timeout", f"The request's headers did not arrive within {self.header_timeout:g} s. "
                                             "Send the whole request at once.")

    def _refuse(self, status: int, slug: str, detail: str) -> None:
        """Answer ``status`` and close: problem+json under /api/, plain text elsewhere."""
        from orders.problems import API_PREFIX, problem

        if self._target().startswith(API_PREFIX):
            response = problem(slug, detail, status=status)
            content_type, body = response["Content-Type"].encode("latin-1"), response.content
        else:
            content_type, body = b"text/plain; charset=utf-8", detail.encode()
        headers = [*self.server_state.default_headers, (b"content-type", content_type),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        for event in (h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _target(self) -> str:
        """The path of the request being refused: from its head's start while the head was being read,
        else the request whose body was being read."""
        if self.head_start is None:
            return self.scope["path"] if self.scope else ""
        line = self.head_start.lstrip(b"\r\n").split(b"\r\n", 1)[0].split(b" ")
        return line[1].decode("latin-1") if len(line) > 1 else ""


class BakeryH11Worker(UvicornH11Worker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": BakeryH11Protocol}
