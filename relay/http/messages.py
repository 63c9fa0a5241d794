"""The values a handler sees and returns, and the pure rules that turn them into h11 events.

Nothing here waits or imports trio: building a `Request` from h11's event, choosing the
response's framing headers and formatting the Date header are plain functions, tested
without a socket.

Header text is latin-1 both ways: request names and values are decoded as latin-1 (every
byte maps to one character, so nothing is lost), response values are encoded as latin-1,
so a value read from a request can be echoed back byte for byte.
"""

from __future__ import annotations

import email.utils
import http
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final

from relay.version import VERSION

if TYPE_CHECKING:
    import h11

SERVER_NAME: Final = f"relay/{VERSION}".encode()


@dataclass(frozen=True, slots=True)
class Request:
    """A request head, exactly as sent (the path is still percent-encoded)."""

    method: str
    target: str  # e.g. "/b/k%20x?uploads="
    path: str  # target up to "?"
    query: str  # target after "?", "" if none
    headers: tuple[tuple[str, str], ...]  # lowercase names, values as sent, in order
    http_version: str  # "1.1"
    client: tuple[str, int] | None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    @property
    def wire_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The headers as the bytes the client sent, for what must see exactly those
        (a SigV4 canonical request: a UTF-8 metadata value is signed as its UTF-8 bytes).
        A value with a character past U+00FF never came off the wire (it was built in
        process) and is taken as text, so as UTF-8."""
        return tuple((name.encode("latin-1"), _wire_bytes(value)) for name, value in self.headers)

    @property
    def chunked(self) -> bool:
        coding = self.header("transfer-encoding")
        return coding is not None and coding.rsplit(",", 1)[-1].strip().lower() == "chunked"

    @property
    def content_length(self) -> int | None:
        """The declared body length; None for a chunked body (h11 validated the digits)."""
        value = self.header("content-length")
        if value is None or self.chunked:
            return None
        return int(value)

    @property
    def expects_continue(self) -> bool:
        """The client waits for "100 Continue" before it sends the body (RFC 9110 §10.1.1)."""
        if self.http_version < "1.1":
            return False
        expect = self.header("expect")
        return expect is not None and "100-continue" in expect.lower()


@dataclass(frozen=True, slots=True)
class WriterBody:
    """A body that writes itself: the server awaits ``write(send)`` in the connection's
    own task, so whatever the writer opens (a nursery of prefetching tasks, a file) is
    opened and closed in one place, properly nested. ``send`` applies backpressure."""

    write: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]


@dataclass(slots=True)
class Response:
    """What a handler returns. The server adds Date, Server and the framing headers.

    `body` is bytes or an async iterable of pieces; the server pulls the next piece only
    after the previous one was written. For an async body, `content_length` (if known) is
    sent as Content-Length, otherwise the body goes out chunked. A handler may instead set
    Content-Length itself (a HEAD response does: the length of what a GET would send).
    `aclose` is always awaited once the body was sent, failed, or was never wanted.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterable[bytes] | WriterBody = b""
    content_length: int | None = None
    aclose: Callable[[], Awaitable[None]] | None = None
    # What the handler says about the request for the request log (relay.http.exchange):
    # passed through untouched, never sent.
    notes: dict[str, str] = field(default_factory=dict)


class RequestBodyError(Exception):
    """Reading the request body failed; the connection is closed after the response.

    `status` is what the server answers if the handler lets the error escape (None: the
    peer is gone and gets no answer).
    """

    status: ClassVar[int | None] = 400


class BodyTimeout(RequestBodyError):
    """The body fell below `body_min_bytes_per_second` or stopped (relay.http.pacing)."""

    status = 408


class ClientDisconnected(RequestBodyError):
    """The peer closed or reset the connection before the body ended."""

    status = None


class BadRequestBody(RequestBodyError):
    """The body's framing is broken (bad chunk size line, ...)."""

    status = 400


def _wire_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def request_from_h11(event: h11.Request, client: tuple[str, int] | None) -> Request:
    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    return Request(
        method=event.method.decode("latin-1"),
        target=target,
        path=path,
        query=query,
        headers=tuple(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
        ),
        http_version=event.http_version.decode("latin-1"),
        client=client,
    )


def response_has_no_body(method: str, status: int) -> bool:
    """Answers to HEAD, 204 and 304 never carry a body, whatever their headers (RFC 9110 §6.4.1)."""
    return method == "HEAD" or status in (204, 304)


def response_headers(
    response: Response, body_length: int | None, *, close: bool, date: bytes
) -> list[tuple[bytes, bytes]]:
    """The head's headers: the handler's, plus Date, Server, the length and Connection: close.

    The handler's own Content-Length or Transfer-Encoding wins over `body_length`; with
    neither and no known length, h11 picks chunked (or close-delimited for HTTP/1.0).
    """
    headers: list[tuple[bytes, bytes]] = []
    has_date = has_server = has_framing = False
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in ("content-length", "transfer-encoding"):
            has_framing = True
        elif lowered == "date":
            has_date = True
        elif lowered == "server":
            has_server = True
        headers.append((lowered.encode("ascii"), value.encode("latin-1")))
    if not has_date:
        headers.append((b"date", date))
    if not has_server:
        headers.append((b"server", SERVER_NAME))
    if not has_framing and body_length is not None:
        headers.append((b"content-length", str(body_length).encode("ascii")))
    if close:
        headers.append((b"connection", b"close"))
    return headers


class HttpDate:
    """The IMF-fixdate of the current second, formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def at(self, unix_seconds: float) -> bytes:
        second = int(unix_seconds)
        if second != self._second:
            self._text = email.utils.formatdate(second, usegmt=True).encode("ascii")
            self._second = second
        return self._text


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase. Clients such as botocore's 100-continue handling only
    recognise a status line with three parts, so an empty phrase is not an option."""
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def render_busy_answer(response: Response, date: bytes) -> bytes:
    """A whole response, head and body, written without h11 (no request was read):
    the server's answer at its connection limit. The body must be bytes."""
    body = response.body
    if not isinstance(body, bytes):
        raise TypeError("a busy answer's body must be bytes")
    status_line = b"HTTP/1.1 %d %s\r\n" % (response.status, reason_phrase(response.status))
    headers = response_headers(response, len(body), close=True, date=date)
    head = b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
    return status_line + head + b"\r\n" + body


def default_busy_answer() -> Response:
    """503 with no body, for a handler that does not say how it refuses."""
    return Response(503, [("retry-after", "1")])
