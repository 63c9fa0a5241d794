"""A small HTTP/1.1 client on h11 and trio: one origin, a bounded pool of keep-alive
connections, whole-message requests and responses.

Theory of operation. ``HttpPool.request`` takes a slot from a ``CapacityLimiter`` (at most
``max_connections`` requests, hence connections, at once), reuses an idle connection to
the origin or opens one (TCP, then TLS through ``trio.SSLStream`` for https), sends the
request head and body, and reads the response to its end. A connection goes back to the
idle list only when h11 says both sides are ``DONE``; anything else (an error, a
``Connection: close``, a cancelled exchange) closes it. Idle connections older than
``idle_connection_seconds`` are dropped rather than reused: servers close quiet
keep-alive connections, and a request written into one that is already closed fails.
Should a reused connection fail anyway before any response byte arrives, the request is
repeated once on a fresh connection (the request never reached a live server).

Every wait is bounded: opening a connection by ``connect_timeout_seconds``, the whole
exchange by the caller's ``timeout_seconds``, and the wait for a slot by the exchanges
holding the slots. Failures to reach or talk to the origin (refused, reset, TLS, a
malformed response, a timeout) all surface as ``ConnectionFailed``, which callers may
retry; an HTTP status, whatever it is, is a ``Response``.

Why not httpx: relay already speaks h11 on the server side, the blob store needs only
whole-message requests to one origin, and this keeps trio's own streams, timeouts and
cancellation semantics with no anyio layer and no new runtime dependency.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Final

import h11
import trio

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Large enough that a 1 MiB chunk arrives in a few dozen receives; small enough that a
# pool of connections does not pin much memory in receive buffers.
_RECEIVE_BYTES: Final = 256 << 10


class ConnectionFailed(Exception):
    """The origin could not be reached, or the exchange broke off: worth a retry."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    requests: int
    connections_opened: int
    idle_connections: int
    bytes_sent: int
    bytes_received: int


class _Connection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 << 10)
        self.idle_since = trio.current_time()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.exchanges = 0

    async def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        """One request and its whole response."""
        protocol = self.protocol
        head = protocol.send(h11.Request(method=method, target=target, headers=headers))
        await self._send(head)
        if body:
            for piece in protocol.send_with_data_passthrough(h11.Data(data=body)) or ():
                await self._send(piece)
        await self._send(protocol.send(h11.EndOfMessage()))
        status = 0
        response_headers: list[tuple[bytes, bytes]] = []
        pieces: list[bytes] = []
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(_RECEIVE_BYTES)
                self.bytes_received += len(data)
                protocol.receive_data(bytes(data))
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = [(bytes(k), bytes(v)) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                pieces.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self.exchanges += 1
                return Response(status, response_headers, b"".join(pieces))
            else:  # ConnectionClosed (or PAUSED, which a client never sees mid-response)
                raise h11.RemoteProtocolError("the connection closed mid-response")

    async def _send(self, data: bytes | None) -> None:
        if data:
            await self.stream.send_all(data)
            self.bytes_sent += len(data)

    def reusable(self) -> bool:
        protocol = self.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            self.idle_since = trio.current_time()
            return True
        return False


class HttpPool:
    """Keep-alive connections to one origin (``scheme://host:port``). See the module."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int | None,
        *,
        max_connections: int,
        connect_timeout_seconds: float,
        idle_connection_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported scheme {scheme!r}")
        self.scheme = scheme
        self.host = host
        self.port = port if port is not None else _DEFAULT_PORTS[scheme]
        self.connect_timeout_seconds = connect_timeout_seconds
        self.idle_connection_seconds = idle_connection_seconds
        self._ssl_context = ssl_context
        self._limiter = trio.CapacityLimiter(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False
        self._requests = 0
        self._opened = 0
        self._bytes_sent = 0
        self._bytes_received = 0

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        *,
        timeout_seconds: float,
    ) -> Response:
        """Send one request and read the whole response, within ``timeout_seconds``."""
        async with self._limiter:
            if self._closed:
                raise ConnectionFailed("the connection pool is closed")
            self._requests += 1
            connection = self._checkout()
            try:
                with trio.fail_after(timeout_seconds):
                    if connection is not None:
                        try:
                            return await self._exchange(connection, method, target, headers, body)
                        except ConnectionFailed as exc:
                            if exc.args[-1] is not _STALE:
                                raise
                    return await self._exchange(
                        await self._connect(), method, target, headers, body
                    )
            except trio.TooSlowError:
                raise ConnectionFailed(
                    f"{method} took longer than {timeout_seconds} s (timeout_seconds)"
                ) from None

    def _checkout(self) -> _Connection | None:
        now = trio.current_time()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < self.idle_connection_seconds:
                return connection
            self._discard(connection)
        return None

    async def _exchange(
        self,
        connection: _Connection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> Response:
        sent, received = connection.bytes_sent, connection.bytes_received
        reused = connection.exchanges > 0
        try:
            response = await connection.exchange(method, target, headers, body)
        except (
            OSError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            h11.ProtocolError,
        ) as exc:
            self._discard(connection)
            self._count(connection, sent, received)
            heard = connection.bytes_received > received
            marker = _STALE if reused and not heard else None
            raise ConnectionFailed(f"{method} to {self.host}: {exc!r}", marker) from None
        except BaseException:
            self._discard(connection)
            raise
        self._count(connection, sent, received)
        if connection.reusable() and not self._closed:
            self._idle.append(connection)
        else:
            self._discard(connection)
        return response

    def _count(self, connection: _Connection, sent: int, received: int) -> None:
        self._bytes_sent += connection.bytes_sent - sent
        self._bytes_received += connection.bytes_received - received

    async def _connect(self) -> _Connection:
        try:
            with trio.fail_after(self.connect_timeout_seconds):
                stream: trio.abc.Stream = await trio.open_tcp_stream(self.host, self.port)
                if self.scheme == "https":
                    context = self._ssl_context or ssl.create_default_context()
                    tls = trio.SSLStream(
                        stream, context, server_hostname=self.host, https_compatible=True
                    )
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
                    stream = tls
        except trio.TooSlowError:
            raise ConnectionFailed(
                f"connecting to {self.host}:{self.port} took longer than"
                f" {self.connect_timeout_seconds} s (connect_timeout_seconds)"
            ) from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectionFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self._opened += 1
        return _Connection(stream)

    def _discard(self, connection: _Connection) -> None:
        # Closing a socket stream does not wait; an SSLStream's close_notify is skipped:
        # the peer learns from the TCP close, and a dead peer cannot stall us.
        stream = connection.stream
        transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        if isinstance(transport, trio.SocketStream):
            transport.socket.close()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            self._requests, self._opened, len(self._idle), self._bytes_sent, self._bytes_received
        )

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection)
        await trio.lowlevel.checkpoint()


# Marks a failure on a reused connection before any response byte: safe to resend once.
_STALE: Final = object()
