"""The HTTP side of the Idempotency-Key protocol: :class:`KeyedWrite`, and ``@idempotent`` for plain views.

The core (:mod:`orders.idempotency`) runs a handler at most once per key. A view that changes
something asks this module, in the order a request meets it (``orders/api.py``'s order view reads
exactly so, top-down)::

    write = KeyedWrite(request, scope=ORDER_SCOPE, policy=ORDER_KEY, customer=customer,
                       idempotency_enabled=customer.idempotency_enabled)
    with write.refusals():                        # each refusal lands on the timeline; the key stays unspent
        write.read_key()                          # missing or invalid: 400
        write.payload = order_payload(request.data)   # what a retry must repeat
        if (answer := write.finished_answer()) is not None:
            return answer                         # a finished key: its replay (one statement), or 422
        validated = validated_order(request.data)  # the view's own validation: 400, stored nowhere
    return write.answer_once(lambda: order_answer(...))  # claim, run once, store; 409 / 422

``answer_once`` claims the key in the handler's transaction, waiting a bounded time for a first
request that is still running (then ``409`` with ``Retry-After``); a key used with another request
is ``422`` naming the fields that differ. The handler runs once; its answer, ``2xx`` to ``4xx``, is
stored and given back byte for byte, the first time and to every retry (with
``Idempotent-Replayed: true`` and ``Idempotency-Replayed: true``). A ``5xx`` or an exception is never
stored: everything rolls back, the key included, so a retry can succeed. With the customer's switch
off (``idempotency_enabled``) the handler simply runs on every request.

Keys belong to an endpoint (``scope``) and to the customer who acts (``request.acting``), and every
decision lands on the timeline through :meth:`KeyRef.event`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from orders.customers import ActingRequest
from orders.events import Kind
from orders.idempotency import (
    FingerprintMismatch,
    KeyInFlight,
    KeyRef,
    StoredResponse,
    replay_if_finished,
    run_once,
)
from orders.models import Customer, Event
from orders.problems import ProblemError, problem, problem_exception_handler

HEADER = "Idempotency-Key"
REPLAY_HEADERS = {"Idempotent-Replayed": "true", "Idempotency-Replayed": "true"}
MAX_KEY_LENGTH = 255
# The key guards requests that change something; a GET or HEAD is served as usual, key or not.
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
# Headers that belong to the response that carried them, not to the answer a replay gives back.
NOT_STORED_HEADERS = {"set-cookie", "content-length", "connection", "vary"}


def sf_string(value: str) -> str:
    """The text of an RFC 8941 sf-string (``"…"`` with ``\\"`` and ``\\\\`` escapes, printable ASCII)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ValueError("is not a quoted string")
    text, index, end = [], 1, len(value) - 1
    while index < end:
        char = value[index]
        if char == "\\":
            index += 1
            if index >= end or value[index] not in '"\\':
                raise ValueError("has a backslash that escapes nothing")
            char = value[index]
        elif char == '"':
            raise ValueError("has a quote inside that is not escaped")
        elif not " " <= char <= "~":
            raise ValueError("has a character outside printable ASCII")
        text.append(char)
        index += 1
    return "".join(text)


@dataclass(frozen=True)
class KeyPolicy:
    """What an endpoint accepts as its key: the format is the endpoint's choice, not the layer's.

    ``convert`` turns the header's text into the key (or raises ``ValueError`` saying why not);
    ``bare`` also accepts a value without quotes; ``hint`` tells a client what a valid key looks like.
    """

    hint: str
    convert: Callable[[str], str] = str
    bare: bool = False

    def parse(self, header: str | None, *, endpoint: str = "This endpoint") -> str:
        """The key, or a ``400`` problem that says what a valid key looks like."""
        if header is None or not header.strip():
            raise ProblemError("idempotency-key-missing", f"{endpoint} needs an {HEADER} header. {self.hint}")
        value = header.strip()
        if len(value) > MAX_KEY_LENGTH + 2:  # room for the quotes of an sf-string
            raise ProblemError("idempotency-key-invalid", f"The key is {len(value)} characters long. {self.hint}")
        try:
            text = sf_string(value) if value.startswith('"') or not self.bare else _bare_token(value)
        except ValueError as why:
            raise ProblemError("idempotency-key-invalid", f"The key {why}. {self.hint}") from None
        if not text or len(text) > MAX_KEY_LENGTH:
            raise ProblemError("idempotency-key-invalid", f"The key is {len(text)} characters long. {self.hint}")
        try:
            return self.convert(text)
        except ValueError as why:
            raise ProblemError("idempotency-key-invalid", f"'{text[:60]}' {why}. {self.hint}") from None

    def parse_or_none(self, header: str | None) -> str | None:
        """The key when the header holds a valid one; for labels where a bad key is no error."""
        try:
            return self.parse(header)
        except ProblemError:
            return None


def _bare_token(value: str) -> str:
    if not all("!" <= char <= "~" for char in value):
        raise ValueError("has a character outside printable ASCII, or a space")
    return value


def _uuid_text(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError("is not a UUID") from None


ANY_SF_STRING = KeyPolicy(hint="Send a quoted string of 1 to 255 printable characters, e.g. "
                               f'{HEADER}: "8e03978e-40d5-43e8-bc93-6894a57f9324", and reuse it on every retry.')


def uuid_key(hint: str) -> KeyPolicy:
    """A UUID, bare or as an sf-string; the key is its canonical lower-case text."""
    return KeyPolicy(hint=hint, convert=_uuid_text, bare=True)


def request_payload(request: HttpRequest) -> dict[str, Any]:
    """The default payload: method, path and body (JSON content compared as JSON, anything else by hash)."""
    body = request.body
    try:
        content = json.loads(body) if body else None
    except ValueError:
        content = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    return {"method": request.method, "path": request.get_full_path(), "body": content}


class KeyedWrite:
    """One write under an ``Idempotency-Key``: the view calls it step by step (see the module's docstring)."""

    def __init__(self, request: HttpRequest, *, scope: str, policy: KeyPolicy, customer: Customer,
                 idempotency_enabled: bool = True, source: str = Event.Source.API,
                 wait_seconds: float | None = None) -> None:
        self.request = request
        self.policy = policy
        self.idempotency_enabled = idempotency_enabled
        self.wait_seconds = wait_seconds
        self.key: str | None = None  # None only with the switch off and no valid key in the header
        self.payload: object = None
        self.ref = KeyRef(scope=scope, owner=str(customer.pk), key="", source=source, customer_id=customer.pk)

    def read_key(self) -> str | None:
        """The header's key under the endpoint's policy; a ``400`` problem when it is missing or
        invalid (with the switch off, a bad key is no error: the write runs unkeyed)."""
        header = self.request.headers.get(HEADER)
        if self.idempotency_enabled:
            self.key = self.policy.parse(header, endpoint=f"{self.request.method} {self.request.path}")
        else:
            self.key = self.policy.parse_or_none(header)
        self.ref = dataclasses.replace(self.ref, key=self.key or "")
        return self.key

    @contextlib.contextmanager
    def refusals(self) -> Iterator[None]:
        """Whatever refuses the write in this block (a bad key, a malformed body, the view's own
        validation) is put on the timeline as ``rejected`` and raised on; nothing is stored."""
        try:
            yield
        except Exception as error:
            key = self.key or self.policy.parse_or_none(self.request.headers.get(HEADER)) or ""
            rejected = dataclasses.replace(self.ref, key=key)
            rejected.event(Kind.REJECTED, scope=self.ref.scope, reason=str(getattr(error, "detail", error))[:300])
            raise

    def finished_answer(self) -> HttpResponse | None:
        """A finished key's answer before any validation: its replay (one statement), or ``422``
        when the request differs. None for a new key or one still running, and with the switch off."""
        if not self.idempotency_enabled:
            return None
        try:
            replayed = replay_if_finished(self.ref, self.payload)
        except FingerprintMismatch as mismatch:
            return _mismatch_problem(mismatch)
        return None if replayed is None else _as_http(replayed.response, replayed=True)

    def answer_once(self, handle: Callable[[], HttpResponse]) -> HttpResponse:
        """Run ``handle`` at most once for this key, in the transaction that claims it, and answer."""
        if not self.idempotency_enabled:
            self.ref.event(Kind.UNGUARDED, scope=self.ref.scope)
            return _rendered(handle())
        try:
            outcome = run_once(self.ref, self.payload, lambda: _storable(handle()), checked_finished=True,
                               wait_seconds=self.wait_seconds)
        except FingerprintMismatch as mismatch:
            return _mismatch_problem(mismatch)
        except KeyInFlight as busy:
            return problem("idempotency-key-in-use",
                           "The first request with this key is still being processed. "
                           f"Retry in {busy.retry_after} s with the same key to get its answer.",
                           headers={"Retry-After": str(busy.retry_after)})
        except _ServerErrorAnswer as failed:
            return failed.response
        # A replay here means the first request finished while this one waited for its lock.
        return _as_http(outcome.response, replayed=outcome.replayed)


class KeyedRequest(ActingRequest):
    """A request as an ``@idempotent`` view sees it, its key in ``idempotency_key`` (for type checkers)."""

    idempotency_key: str | None


View: TypeAlias = Callable[..., HttpResponse]


def idempotent(*, scope: str, key: KeyPolicy = ANY_SF_STRING,
               payload: Callable[[HttpRequest], object] = request_payload, source: str = Event.Source.API,
               wait_seconds: Callable[[], float] | None = None) -> Callable[[View], View]:
    """``@idempotent``: a plain view that runs once per ``Idempotency-Key`` and replays its answer.

    For a view with nothing to validate before the key is claimed (the order view, which has, calls
    :class:`KeyedWrite` itself). The view is called as ``view(request, **kwargs)`` and finds the key
    in ``request.idempotency_key``::

        @require_POST
        @idempotent(scope="labels.print")  # any sf-string key, the whole request as its payload
        def print_label(request):
            return HttpResponse(services.label_print(request.body), status=201)

    ``key`` is the endpoint's key format (default: any sf-string of at most 255 characters);
    ``payload(request)`` is what a retry must repeat (default: method, path and body);
    ``wait_seconds()`` how long a retry waits for a first request still running before its ``409``
    (default: ``IDEMPOTENCY_WAIT_SECONDS``). A safe method (GET, HEAD) passes straight through.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def keyed_view(request: KeyedRequest, **kwargs: object) -> HttpResponse:
            if request.method in SAFE_METHODS:
                return view(request, **kwargs)
            try:
                write = KeyedWrite(request, scope=scope, policy=key, customer=request.acting.customer(),
                                   source=source, wait_seconds=wait_seconds() if wait_seconds else None)
                with write.refusals():
                    request.idempotency_key = write.read_key()
                    write.payload = payload(request)
                    answer = write.finished_answer()
            except APIException as refused:  # a ProblemError too: customer-missing, a bad key
                # DRF's handler answers every APIException.
                return _rendered(cast(HttpResponse, problem_exception_handler(refused, {})))
            return answer or write.answer_once(lambda: view(request, **kwargs))

        return keyed_view

    return decorate


class _ServerErrorAnswer(Exception):
    """A handler answered 5xx: raised through the layer so that its transaction rolls back."""

    def __init__(self, response: HttpResponse):
        super().__init__(f"the handler answered {response.status_code}")
        self.response = response


def _storable(response: HttpResponse) -> StoredResponse:
    """The handler's answer as the record keeps it; a 5xx is raised instead, so that everything
    rolls back and the key is released."""
    response = _rendered(response)
    if response.status_code >= 500:
        raise _ServerErrorAnswer(response)
    return StoredResponse(response.status_code, bytes(response.content),
                          {name: value for name, value in response.headers.items()
                           if name.lower() not in NOT_STORED_HEADERS})


def _rendered(response: HttpResponse) -> HttpResponse:
    if isinstance(response, StreamingHttpResponse):
        raise TypeError("@idempotent stores the answer byte for byte, so it cannot wrap a streaming response")
    if isinstance(response, Response) and not response.is_rendered:
        response.accepted_renderer, response.accepted_media_type = JSONRenderer(), "application/json"
        # rest_framework-stubs leave out renderer_context, which render() reads.
        response.renderer_context = {}  # type: ignore[attr-defined]
        response.render()
    return response


def _mismatch_problem(mismatch: FingerprintMismatch) -> HttpResponse:
    return problem("idempotency-key-reused",
                   f"This key was first used with a different request ({', '.join(mismatch.fields)} differ). "
                   "Use a new key for a new request.", fields=mismatch.fields)


def _as_http(stored: StoredResponse, *, replayed: bool) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response[name] = value
    if replayed:
        for name, value in REPLAY_HEADERS.items():
            response[name] = value
    return response
