"""The web tier's edges, over real sockets against the real ASGI server (gunicorn with the bakery's
uvicorn worker, bakery.web): a refused body ends cleanly, so the connection it came on serves the
client's next request; what the server cannot parse is refused in the bakery's words; a client that
sends half a request and waits is answered 408 and closed."""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from orders.models import Order
from tests.bakery.test_room_guard import customer_session
from tests.servers import BakeryServer

GIANT = b'{"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": "' + b"x" * 70_000 + b'"}'


class Connection:
    """One raw HTTP/1.1 connection: send bytes, read one answer (status, headers, body)."""

    def __init__(self, url: str):
        host, port = url.split("//")[1].split(":")
        self.host = f"{host}:{port}"
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""

    def send(self, data: bytes, *, pace: float = 0.0, piece: int = 8192) -> None:
        for start in range(0, len(data), piece if pace else len(data) or 1):
            self.sock.sendall(data[start:start + (piece if pace else len(data))])
            time.sleep(pace)

    def answer(self) -> tuple[int, dict, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            self.buffer += self._recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def order_head(host: str, cookies: dict, token: str, framing: str) -> bytes:
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return (f"POST /api/orders/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-CSRFToken: {token}\r\n"
            f"Idempotency-Key: {uuid.uuid4()}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n").encode()


def chunked(body: bytes, size: int = 4096) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("pace", [0.0, 0.3], ids=["at once", "slowly"])
def test_a_body_over_64_kib_is_a_413_and_the_connection_serves_the_next_request(bakery_server, cake, framing, pace):
    """Slowly: the body takes about 3 s to arrive, longer than the server keeps an idle connection."""
    cookies, token, _ = customer_session(bakery_server.url)
    connection = Connection(bakery_server.url)
    try:
        if framing == "content-length":
            head, body = order_head(connection.host, cookies, token, f"Content-Length: {len(GIANT)}"), GIANT
        else:
            head, body = order_head(connection.host, cookies, token, "Transfer-Encoding: chunked"), chunked(GIANT)
        connection.send(head)
        connection.send(body, pace=pace)
        status, headers, answer = connection.answer()
        assert status == 413 and b"body-too-large" in answer
        assert headers.get("connection", "").lower() != "close"
        connection.send(f"GET /api/me/ HTTP/1.1\r\nHost: {connection.host}\r\n\r\n".encode())
        status, _, answer = connection.answer()
        assert status == 200 and b'"customer"' in answer
    finally:
        connection.close()
    assert not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_client_keeping_its_connection_alive_orders_after_a_413(bakery_server, cake):
    cookies, token, _ = customer_session(bakery_server.url)
    headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
    with httpx.Client(base_url=bakery_server.url, cookies=cookies, timeout=30,
                      limits=httpx.Limits(max_connections=1)) as client:
        ports = []
        for body in (GIANT, iter([GIANT[:40_000], GIANT[40_000:]])):  # with a Content-Length, then chunked
            refused = client.post("/api/orders/", content=body,
                                  headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
            assert refused.status_code == 413 and refused.json()["code"] == "body-too-large"
            placed = client.post("/api/orders/", json={"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                                 headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
            assert placed.status_code == 201, placed.text
            ports += [answer.extensions["network_stream"].get_extra_info("client_addr")[1]
                      for answer in (refused, placed)]
    assert len(set(ports)) == 1, f"one connection throughout: {ports}"
    assert Order.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_body_that_goes_on_and_on_is_a_413_that_closes_its_connection(bakery_server, cake):
    cookies, token, _ = customer_session(bakery_server.url)
    connection = Connection(bakery_server.url)
    try:
        connection.send(order_head(connection.host, cookies, token, "Transfer-Encoding: chunked"))
        try:
            connection.send(chunked(b"x" * 3 * 1024 * 1024, size=65536)[:-5])  # 3 MiB and still going
        except OSError:
            pass  # the server stopped reading: its answer is already there
        status, headers, answer = connection.answer()
        assert status == 413 and b"body-too-large" in answer
        assert headers["connection"].lower() == "close"
    finally:
        connection.close()
    assert not Order.objects.exists()


# --- what the server answers itself --------------------------------------------------------------

def until_closed(connection: Connection) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = connection.buffer
    while True:
        try:
            data = connection.sock.recv(65536)
        except ConnectionResetError:
            return received + b"<reset>"
        if not data:
            return received
        received += data


def request_in_pieces(connection: Connection, data: bytes) -> None:
    try:
        connection.send(data, pace=0.01, piece=1024)
    except OSError:
        pass  # the server stopped reading: its answer is already there


SERVER_REFUSALS = {
    # what -> (the request, the status, problem+json or not)
    "a request line that is not HTTP": (lambda host: b"GARBAGE\r\n\r\n", 400, False),
    "a header line without a colon, under /api/": (
        lambda host: f"GET /api/me/ HTTP/1.1\r\nHost: {host}\r\nNo\r\n\r\n".encode(), 400, True),
    "a header line without a colon, on a page": (
        lambda host: f"GET / HTTP/1.1\r\nHost: {host}\r\nNo\r\n\r\n".encode(), 400, False),
    "chunked framing that is not hex": (lambda host: (
        f"POST /api/orders/ HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    ).encode(), 400, True),
    "headers over 16 KiB": (lambda host: (f"GET /api/me/ HTTP/1.1\r\nHost: {host}\r\nX-Long: ".encode()
                                          + b"a" * 100_000 + b"\r\n\r\n"), 431, True),
    "a URL over 16 KiB": (lambda host: b"GET /api/" + b"a" * 100_000 + f" HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
                          431, True),
    "a page's headers over 16 KiB": (lambda host: (f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Long: ".encode()
                                                   + b"a" * 100_000 + b"\r\n\r\n"), 431, False),
}


@pytest.mark.parametrize("what", SERVER_REFUSALS)
def test_what_the_server_cannot_parse_is_refused_in_the_bakerys_words_and_closes_the_connection(bakery_server, what):
    """As the README says: the server answers these itself, before Django sees them, but as the bakery
    would: problem+json ``invalid-request`` under /api/, plain text elsewhere; over 16 KiB of head, a 431."""
    request, status, as_problem = SERVER_REFUSALS[what]
    connection = Connection(bakery_server.url)
    try:
        request_in_pieces(connection, request(connection.host))
        answer = until_closed(connection)
    finally:
        connection.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    assert b"connection: close" in head.lower() and f"content-length: {len(body)}".encode() in head.lower()
    if as_problem:
        assert b"content-type: application/problem+json" in head.lower()
        problem = json.loads(body)
        assert problem["code"] == "invalid-request" and problem["status"] == status, problem
    else:
        assert b"content-type: text/plain; charset=utf-8" in head.lower()
        assert body == (b"The request line and headers are over 16 KiB." if status == 431
                        else b"The request is not valid HTTP/1.1.")


def test_what_the_server_parses_reaches_the_bakery_and_is_problem_json(bakery_server):
    """An 8 KiB URL, or headers of 8 KiB, arriving whole: the bakery's own 404 problem, not the server's."""
    connection = Connection(bakery_server.url)
    try:
        connection.send(b"GET /api/" + b"a" * 8_000 + f" HTTP/1.1\r\nHost: {connection.host}\r\n".encode()
                        + b"X-Long: " + b"b" * 8_000 + b"\r\n\r\n")
        while b"\r\n\r\n" not in connection.buffer:
            connection.buffer += connection._recv()
    finally:
        connection.close()
    head = connection.buffer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 404 ") and b"content-type: application/problem+json" in head


# --- slow clients --------------------------------------------------------------------------------


def half_sent(url: str, what: str) -> socket.socket:
    """A connection from 127.0.0.2 that sends half a request and then waits: headers never finished,
    or headers whole and a body that never is."""
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=("127.0.0.2", 0))
    if what == "headers":
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nX-Half: ".encode())
    else:
        sock.sendall(f"POST /api/orders/ HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{\"items\": ".encode())
    return sock


def closed_by_server(sock: socket.socket) -> tuple[bool, bytes]:
    sock.settimeout(0.05)
    try:
        received = b""
        while data := sock.recv(65536):
            received += data
        return True, received
    except TimeoutError:
        return False, b""
    except ConnectionResetError:
        return True, b""


@pytest.mark.django_db(transaction=True)
def test_two_hundred_half_sent_requests_leave_another_learner_served_and_each_gets_its_408(cake):
    server = BakeryServer({"REQUEST_HEADER_TIMEOUT_SECONDS": "3", "REQUEST_BODY_TIMEOUT_SECONDS": "3"},
                          workers=2).start()
    sockets: dict[str, list[socket.socket]] = {"headers": [], "body": []}
    try:
        cookies, token, _ = customer_session(server.url)
        for what in ("headers", "body"):
            sockets[what] = [half_sent(server.url, what) for _ in range(100)]
        opened = time.monotonic()
        with httpx.Client(base_url=server.url, cookies=cookies, timeout=30) as learner:
            started = time.monotonic()
            page = learner.get("/")
            page_seconds = time.monotonic() - started
            started = time.monotonic()
            placed = learner.post("/api/orders/", json={"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                                  headers={"X-CSRFToken": token, "Idempotency-Key": str(uuid.uuid4())})
            order_seconds = time.monotonic() - started
        time.sleep(max(0.0, opened + 5 - time.monotonic()))  # both timeouts (3 s), and time to answer
        bodies = [closed_by_server(sock) for sock in sockets["body"]]
        heads = [closed_by_server(sock) for sock in sockets["headers"]]
    finally:
        for sock in sockets["headers"] + sockets["body"]:
            sock.close()
        server.stop()
    assert page.status_code == 200 and placed.status_code == 201, placed.text
    assert page_seconds < 1.0 and order_seconds < 1.0, (page_seconds, order_seconds)
    assert all(closed for closed, _ in bodies), f"{sum(not c for c, _ in bodies)} of 100 half bodies still open"
    assert all(answer.startswith(b"HTTP/1.1 408 ") and b"request-timeout" in answer for _, answer in bodies)
    assert all(closed for closed, _ in heads), f"{sum(not c for c, _ in heads)} of 100 half heads still open"
    assert all(answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower()
               and answer.endswith(b"did not arrive within 3 s. Send the whole request at once.")
               for _, answer in heads), heads[0][1]
    assert Order.objects.count() == 1
    print(f"GET / {page_seconds:.3f} s, order {order_seconds:.3f} s; 5 s after opening, closed by the server "
          "with a 408: 100 of 100 unfinished heads and 100 of 100 unfinished bodies")


def closing(connection: Connection) -> tuple[float, bytes]:
    """Wait for the server to close the connection: when it did, and what it sent until then."""
    received = until_closed(connection)
    return time.monotonic(), received


@pytest.mark.django_db(transaction=True)
def test_a_head_is_due_within_the_timeout_of_the_connection_or_of_its_first_byte(cake):
    """A connection that sends nothing is closed without a word; an unfinished head under /api/ gets a
    problem+json 408; on a kept-alive connection the next head has the whole timeout from its first
    byte; a head typed slowly but finished in time is served."""
    server = BakeryServer({"REQUEST_HEADER_TIMEOUT_SECONDS": "2"}, workers=1).start()
    connections = []
    try:
        connections = [Connection(server.url) for _ in range(3)]
        silent, unfinished, kept = connections
        began = time.monotonic()
        unfinished.send(f"GET /api/me/ HTTP/1.1\r\nHost: {unfinished.host}\r\nAccept: ".encode())
        kept.send(f"GET /api/me/ HTTP/1.1\r\nHost: {kept.host}\r\n\r\n".encode())
        with ThreadPoolExecutor(3) as pool:
            closes = [pool.submit(closing, silent), pool.submit(closing, unfinished)]
            first_status, _, _ = kept.answer()
            time.sleep(1)  # under the keep-alive timeout (2 s)
            next_head = time.monotonic()
            kept.send(f"POST /api/orders/ HTTP/1.1\r\nHost: {kept.host}\r\n".encode())
            closes.append(pool.submit(closing, kept))
            typist = Connection(server.url)
            connections.append(typist)
            head = f"GET /api/me/ HTTP/1.1\r\nHost: {typist.host}\r\nAccept: */*\r\n\r\n".encode()
            typist.send(head, pace=0.25, piece=-(-len(head) // 6))  # 6 pieces over 1.5 s
            typed_status, _, _ = typist.answer()
            (silent_at, said), (unfinished_at, timed_out), (kept_at, kept_timed_out) = [c.result() for c in closes]
    finally:
        for connection in connections:
            connection.close()
        server.stop()
    assert typed_status == 200 and first_status == 200
    assert said == b"" and began + 2 <= silent_at < began + 5, silent_at - began
    for answer in (timed_out, kept_timed_out):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ") and b"content-type: application/problem+json" in head.lower()
        assert json.loads(body)["code"] == "request-timeout"
    assert began + 2 <= unfinished_at < began + 5, unfinished_at - began
    assert next_head + 2 <= kept_at < next_head + 5, kept_at - next_head
