"""Strict request framing (RFC 9112): the pure head check, and the same refusals on a socket."""

from __future__ import annotations

import socket
from functools import partial

import h11
import pytest
import trio

from relay.http import Request, RequestBody, Response, serve_http
from relay.http.framing import check_request_head, raw_head

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
# Each: a head h11 accepts, and the status relay answers instead of serving it.
REFUSED = {
    "content-length-and-chunked": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 41\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "chunked-then-content-length": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    "two-equal-content-lengths": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    "content-length-list": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
        400,
    ),
    "obsolete-line-folding": (
        b"GET /a HTTP/1.1\r\nHost: t\r\nX-Amz-Meta-A: one\r\n two\r\n\r\n",
        400,
    ),
    "chunked-in-http-1.0": (
        b"PUT /a HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "http-3.0": (b"GET /a HTTP/3.0\r\nHost: t\r\n\r\n", 505),
    "http-1.2": (b"GET /a HTTP/1.2\r\nHost: t\r\n\r\n", 505),
    "http-0.9-style-version": (b"GET /a HTTP/0.9\r\nHost: t\r\n\r\n", 505),
    # Refused by h11 itself (501): kept here so a future h11 cannot loosen them unnoticed.
    "gzip-then-chunked": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "chunked-twice": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "two-transfer-encoding-headers": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    # Refused by h11 itself (400).
    "conflicting-content-lengths": (
        b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
}
REFUSED_BY_H11 = {
    "gzip-then-chunked",
    "chunked-twice",
    "two-transfer-encoding-headers",
    "conflicting-content-lengths",
}
# Heads with nothing to refuse.
ACCEPTED = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nHost: t\r\ntransfer-encoding: Chunked\r\n\r\n",
    b"PUT /a HTTP/1.1\nHost: t\nContent-Length: 0\n\n",  # bare LF lines, as h11 allows
    b"GET / HTTP/1.1\r\nHost: t\r\nX-Amz-Meta-List: a, b\r\nX-Amz-Meta-Length: 1,2\r\n\r\n",
]


def h11_accepts(head: bytes) -> bool:
    server = h11.Connection(h11.SERVER)
    server.receive_data(head)
    try:
        return type(server.next_event()) is h11.Request
    except h11.RemoteProtocolError:
        return False


@pytest.mark.parametrize(
    ("data", "status"),
    [case for name, case in REFUSED.items() if name not in REFUSED_BY_H11],
)
def test_heads_h11_accepts_are_refused_by_the_strict_check(data: bytes, status: int) -> None:
    assert h11_accepts(data)  # the gap this check closes
    head = raw_head(data)
    assert head is not None
    refusal = check_request_head(head)
    assert refusal is not None
    assert refusal.status == status


@pytest.mark.parametrize("data", ACCEPTED)
def test_strictly_framed_heads_pass(data: bytes) -> None:
    assert h11_accepts(data)
    head = raw_head(data)
    assert head is not None
    assert check_request_head(head) is None


def test_raw_head_stops_at_the_first_blank_line_as_h11_does() -> None:
    assert raw_head(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nbody\r\n\r\n") == (
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert raw_head(b"GET / HTTP/1.1\nHost: t\n\r\nrest") == b"GET / HTTP/1.1\nHost: t\n\r\n"
    assert raw_head(b"GET / HTTP/1.1\r\nHost: t\r\n") is None


def send_raw(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh socket and return all the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
        return bytes(received)


async def test_a_running_server_refuses_each_badly_framed_head_and_closes() -> None:
    served: list[str] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        served.append(request.target)
        async for _ in body:
            pass
        return Response(200, [], b"ok")

    shutdown = trio.Event()
    answers: dict[str, bytes] = {}
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(
            partial(serve_http, handler, "127.0.0.1", 0, shutdown=shutdown)
        )
        for name, (data, _) in REFUSED.items():
            answers[name] = await trio.to_thread.run_sync(send_raw, port, data)
        # A clean pipelined pair still gets both answers: the check refuses framing, not reuse.
        pipelined = await trio.to_thread.run_sync(
            send_raw, port, b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi" + SMUGGLED
        )
        shutdown.set()
    for name, (_, status) in REFUSED.items():
        answer = answers[name]
        assert answer.startswith(b"HTTP/1.1 %d " % status), (name, answer)
        assert answer.count(b"HTTP/1.1 ") == 1, name  # never a second, smuggled response
        assert b"connection: close" in answer.lower(), name
    assert served == ["/a", "/smuggled"]  # only the clean pair reached the handler
    assert pipelined.count(b"HTTP/1.1 200 ") == 2
