"""One HTTP/1.1 connection, from its first byte to its close: theory of operation.

h11 is the state machine. It frames requests and responses and knows, for each side,
where the current request/response cycle stands (`our_state`, `their_state`). This module
reads bytes into h11, writes h11's bytes out, and makes every lifecycle decision by
looking at those two states; it keeps no parallel copy of them (STYLE §2). One cycle:

1. head    Read until h11 yields a `Request`. Deadline: `header_timeout_seconds` from the
           connection's start for its first request; for a later one, up to
           `keepalive_idle_timeout_seconds` for its first byte, then `header_timeout_seconds`
           from that byte. A connection with no byte of a next request is *idle*: it
           closes quietly on its timeout or when graceful shutdown begins. Garbage gets
           400 (or h11's hint, e.g. 501), a head over `max_header_bytes` 431, a partial
           head that timed out 408, a head h11 accepts but strict framing does not
           (`relay.http.framing`: Content-Length with Transfer-Encoding, repeated
           Content-Length, obsolete line folding) 400 and a version other than 1.0 or
           1.1 505; each closes the connection before any handler runs.
2. handle  The handler gets the `Request` and a `RequestBody`. Nothing of the body is read
           before the handler asks: the first read sends "100 Continue" if the client is
           waiting for it, so a handler that refuses first (bad signature, no bucket) never
           makes the client upload (STYLE §6).
3. respond The handler's `Response` goes out: head and a small body in one write, a
           large or streamed body piece by piece, each write awaited before the next
           piece is pulled (backpressure). `Response.aclose` runs afterwards, always.
4. drain   If the handler answered without reading the whole body (their_state is still
           SEND_BODY), the body is discarded to keep the connection, unless that is
           pointless or costly, in which case the response carries `Connection: close`
           and the connection closes without reading more:
             - the client is still waiting for 100 Continue (it never got one): it has
               not sent the body and should not now; closing is what RFC 9110 §10.1.1
               leaves the server, and it costs the client nothing but a reconnect;
             - the declared Content-Length left to read exceeds `drain_body_bytes`.
           Otherwise (small or chunked bodies) up to `drain_body_bytes` are read within
           `drain_timeout_seconds`; past either limit the connection closes.
5. next    Only when both states are DONE: `start_next_cycle()` and back to 1; any other
           pair (MUST_CLOSE after `Connection: close` or HTTP/1.0, ERROR) closes.

Timeouts are cancel scopes, each created in one place: `_receive_head` (idle and header),
`_receive_body_bytes` (body pace: at least `body_min_bytes_per_second` on average, no gap
over `body_stall_timeout_seconds`, see `relay.http.pacing`), `_send` (write), `_drain`
(drain) and `_release` (aclose). Memory per connection: one socket read (at most
64 KiB) plus h11's buffer of unparsed bytes, plus whatever the handler holds.

A peer that went away is not answered; a handler that raised gets 500 if nothing was
sent yet; either way the connection closes and the cause is logged on "relay.http".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, cast

import h11
import trio

from relay.http.config import DEFAULT_HTTP_CONFIG, HttpConfig
from relay.http.exchange import Exchange, ExchangeObserver, HttpActivity, ignore_exchange
from relay.http.framing import FramingRefusal, check_request_head, raw_head
from relay.http.messages import (
    SERVER_NAME,
    BadRequestBody,
    BodyTimeout,
    ClientDisconnected,
    HttpDate,
    Request,
    RequestBodyError,
    Response,
    WriterBody,
    reason_phrase,
    request_from_h11,
    response_has_no_body,
    response_headers,
)
from relay.http.pacing import BodyPace

logger = logging.getLogger("relay.http")

# A whole small PUT (head and body) usually arrives in one read of this size.
_HEAD_RECEIVE_BYTES: Final = 64 * 1024
# Body reads. Each connection may hold one read while its upload waits for the chunk
# pool, so this times max_connections is memory outside the pool: with 1014 uploads
# queued at once, peak RSS was 355 MiB at 256 KiB and 149 MiB at 64 KiB. A 1 GiB PUT
# from curl ran at 136-163 MB/s with 256 KiB reads and 152-173 MB/s with 64 KiB (the
# hashing, not the reads, sets the pace).
_BODY_RECEIVE_BYTES: Final = 64 * 1024
# A response (or chunk) up to this size is joined into one write; above it, joining
# would copy more than the saved syscall is worth.
_COALESCE_BYTES: Final = 64 * 1024

_dates = HttpDate()


class GracefulShutdown:
    """Tells connections that the server is stopping, and knows which ones are idle.

    After `begin()`, idle connections (no byte of a next request yet: kept alive between
    requests, or accepted and silent) close at once, and busy ones answer their current
    request with `Connection: close`. At the connection limit the server sheds idle
    connections one at a time with `shed_idle()`, the longest idle first.
    """

    __slots__ = ("_begun", "_idle_waits")

    def __init__(self) -> None:
        self._begun = False
        self._idle_waits: dict[trio.CancelScope, None] = {}  # oldest first

    @property
    def begun(self) -> bool:
        return self._begun

    def begin(self) -> None:
        self._begun = True
        for scope in self._idle_waits:
            scope.cancel()

    def shed_idle(self) -> bool:
        """Close the longest-idle connection (quietly); False if none is idle."""
        for scope in self._idle_waits:
            del self._idle_waits[scope]
            scope.cancel()
            return True
        return False

    def _watch_idle(self, scope: trio.CancelScope) -> None:
        self._idle_waits[scope] = None

    def _unwatch_idle(self, scope: trio.CancelScope) -> None:
        self._idle_waits.pop(scope, None)


def _strict_framing_refusal(received: Sequence[bytes | bytearray]) -> FramingRefusal | None:
    head = raw_head(b"".join(received))
    if head is None:  # h11 found a head, so this cannot happen; refuse rather than guess
        return FramingRefusal(400, "request head not found")
    return check_request_head(head)


class _WriteTimeout(Exception):
    """A socket write blocked for `write_timeout_seconds` (the client stopped reading)."""


class RequestBody:
    """The request body, read on demand; pieces are as h11 de-framed them, not copied.

    Pieces are bytes-like: h11 hands out `bytearray` objects, passed through uncopied.
    The first read sends "100 Continue" if the client asked for it. Errors: `BodyTimeout`
    (slower than `body_min_bytes_per_second`, or a gap over `body_stall_timeout_seconds`),
    `ClientDisconnected`, `BadRequestBody` (framing); after one, every later read raises
    the same kind.
    """

    __slots__ = ("_connection", "_ended", "_failure", "_pending", "_released", "bytes_received")

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._pending: memoryview | None = None  # the part of a piece over max_bytes
        self._failure: RequestBodyError | None = None
        self._ended = False
        self._released = False
        self.bytes_received = 0  # body bytes taken from h11 so far

    async def receive_some(self, max_bytes: int = 1 << 20) -> bytes:
        """The next piece of at most `max_bytes`, or b"" at the end of the body."""
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if self._pending is not None:
            await trio.lowlevel.checkpoint()
            return self._take_pending(max_bytes)
        if self._failure is not None:
            raise type(self._failure)(*self._failure.args)
        if self._ended:
            await trio.lowlevel.checkpoint()
            return b""
        if self._released:
            raise RuntimeError("the request body was read after its response was sent")
        try:
            piece = await self._connection._receive_body_piece()
        except RequestBodyError as failure:
            self._failure = failure
            raise
        if not piece:
            self._ended = True
            return b""
        self.bytes_received += len(piece)
        if len(piece) <= max_bytes:
            return piece
        self._pending = memoryview(piece)
        return self._take_pending(max_bytes)

    def _take_pending(self, max_bytes: int) -> bytes:
        pending = self._pending
        assert pending is not None
        if len(pending) > max_bytes:
            self._pending = pending[max_bytes:]
            return bytes(pending[:max_bytes])
        self._pending = None
        return bytes(pending)

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        piece = await self.receive_some()
        if not piece:
            raise StopAsyncIteration
        return piece

    def _release(self) -> None:
        self._released = True
        self._pending = None


Handler = Callable[[Request, RequestBody], Awaitable[Response]]


async def serve_connection(
    stream: trio.abc.Stream,
    handler: Handler,
    config: HttpConfig = DEFAULT_HTTP_CONFIG,
    *,
    client: tuple[str, int] | None = None,
    shutdown: GracefulShutdown | None = None,
    observer: ExchangeObserver = ignore_exchange,
    activity: HttpActivity | None = None,
) -> None:
    """Serve HTTP/1.1 requests on `stream` until either side is done with it; close it.

    `observer` hears of every request answered or refused on it (`Exchange`); `activity`
    counts the connection as open and each request as in flight while it is."""
    activity = activity or HttpActivity()
    connection = _Connection(
        stream, handler, config, client, shutdown or GracefulShutdown(), observer, activity
    )
    activity.open_connections += 1
    try:
        await connection.serve()
    except Exception:
        logger.exception("connection from %s failed", client)
    finally:
        activity.open_connections -= 1
        await trio.aclose_forcefully(stream)


class _Connection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Handler,
        config: HttpConfig,
        client: tuple[str, int] | None,
        shutdown: GracefulShutdown,
        observer: ExchangeObserver,
        activity: HttpActivity,
    ) -> None:
        self._stream = stream
        self._handler = handler
        self._config = config
        self._client = client
        self._remote = "" if client is None else f"{client[0]}:{client[1]}"
        self._shutdown = shutdown
        self._observer = observer
        self._activity = activity
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self._requests_started = 0
        self._body_pace = self._new_body_pace()
        # The exchange under way, for its report: what went out, and why it ended badly.
        self._status_sent = 0
        self._body_bytes_sent = 0
        self._notes: dict[str, str] = {}
        self._failure = ""

    def _new_body_pace(self) -> BodyPace:
        return BodyPace(
            self._config.body_min_bytes_per_second, self._config.body_stall_timeout_seconds
        )

    async def serve(self) -> None:
        started_at = trio.current_time()
        while True:
            event = await self._receive_head(started_at)
            if event is None:
                return
            self._requests_started += 1
            if not await self._handle(event):
                return
            self._h11.start_next_cycle()

    # 1. head

    async def _receive_head(self, connection_started_at: float) -> h11.Request | None:
        """The next request head, or None when the connection should close."""
        conn, config = self._h11, self._config
        if self._shutdown.begun:
            return None
        first = self._requests_started == 0
        pipelined = conn.trailing_data[0]  # bytes of this head the last cycle read already
        buffered = len(pipelined)
        idle = buffered == 0
        # The raw bytes fed since this head began (at most max_header_bytes): h11's event
        # has lost what the strict framing checks look for (relay.http.framing).
        received: list[bytes | bytearray] = [pipelined] if pipelined else []
        if first:
            deadline = connection_started_at + config.header_timeout_seconds
        elif idle:
            deadline = trio.current_time() + config.keepalive_idle_timeout_seconds
        else:
            deadline = trio.current_time() + config.header_timeout_seconds
        refusal: int | None = None
        reason = ""
        head_started, head_began = time.time(), trio.current_time()
        with trio.CancelScope(deadline=deadline) as waiting:
            if idle:
                self._shutdown._watch_idle(waiting)
            try:
                while True:
                    try:
                        event = conn.next_event()
                    except h11.RemoteProtocolError as exc:
                        refusal = exc.error_status_hint
                        reason = f"malformed request head: {exc}"
                        break
                    if event is h11.NEED_DATA:
                        # Never let h11 buffer more than max_header_bytes of an incomplete
                        # head: h11 checks its limit only while a head is incomplete, so
                        # one large read could otherwise complete an oversized head.
                        room = config.max_header_bytes - buffered
                        if room <= 0:
                            refusal = 431
                            reason = f"request head over {config.max_header_bytes} bytes"
                            break
                        try:
                            data = await self._stream.receive_some(min(room, _HEAD_RECEIVE_BYTES))
                        except trio.BrokenResourceError:
                            return None
                        if idle and data:
                            idle = False
                            self._shutdown._unwatch_idle(waiting)
                            if not first:
                                waiting.deadline = (
                                    trio.current_time() + config.header_timeout_seconds
                                )
                        buffered += len(data)
                        received.append(data)
                        self._feed(data)
                    elif type(event) is h11.Request:
                        refused = _strict_framing_refusal(received)
                        if refused is None:
                            return event
                        logger.debug("refused a request head: %s", refused.reason)
                        refusal = refused.status
                        reason = refused.reason
                        break
                    else:  # ConnectionClosed: the client closed between requests
                        return None
            finally:
                self._shutdown._unwatch_idle(waiting)
        if refusal is None:  # the deadline passed, or shutdown began while idle
            if idle:
                return None
            refusal = 408
            reason = "request head not complete in time"
        self._begin_exchange()
        self._failure = reason
        await self._refuse(refusal)
        self._report(head_started, head_began, "", "", 0)
        return None

    # 2. handle

    async def _handle(self, event: h11.Request) -> bool:
        """Run the handler and answer it; True if the connection can carry another request."""
        request = request_from_h11(event, self._client)
        body = RequestBody(self)
        self._body_pace = self._new_body_pace()
        self._begin_exchange()
        started, began = time.time(), trio.current_time()
        self._activity.requests_in_flight += 1
        try:
            try:
                response = await self._handler(request, body)
            except RequestBodyError as exc:
                logger.debug("%s %s: %r", request.method, request.target, exc)
                self._failure = str(exc)
                if exc.status is not None:
                    await self._refuse(exc.status)
                return False
            except Exception:
                logger.exception("handler failed on %s %s", request.method, request.target)
                self._failure = "the handler failed"
                await self._refuse(500)
                return False
            self._notes = response.notes
            return await self._respond(request, body, response)
        finally:
            self._activity.requests_in_flight -= 1
            body._release()
            self._report(
                started,
                began,
                request.method,
                next((value for name, value in request.headers if name == "user-agent"), ""),
                body.bytes_received,
            )

    async def _receive_body_piece(self) -> bytes:
        """The next de-framed piece of the request body, b"" at its end (for RequestBody)."""
        conn = self._h11
        if conn.they_are_waiting_for_100_continue:
            try:
                await self._send(
                    self._encode(
                        h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                    )
                )
            except trio.BrokenResourceError as exc:
                raise ClientDisconnected("the client went away before 100 Continue") from exc
            except _WriteTimeout as exc:
                raise BodyTimeout("the client does not read 100 Continue") from exc
        read_socket = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadRequestBody(str(exc)) from exc
            if event is h11.NEED_DATA:
                self._feed(await self._receive_body_bytes())
                read_socket = True
                continue
            if not read_socket:  # served from h11's buffer: still a checkpoint
                await trio.lowlevel.checkpoint()
            if type(event) is h11.Data:
                if event.data:
                    data: bytes = event.data
                    return data
            elif type(event) is h11.EndOfMessage:
                return b""
            else:
                raise BadRequestBody(f"unexpected {type(event).__name__} in the request body")

    async def _receive_body_bytes(self) -> bytes | bytearray:
        pace = self._body_pace
        started = trio.current_time()
        with trio.move_on_after(pace.allowance_seconds()):
            try:
                data = await self._stream.receive_some(_BODY_RECEIVE_BYTES)
            except trio.BrokenResourceError as exc:
                raise ClientDisconnected("the connection broke mid-body") from exc
            if not data:
                raise ClientDisconnected("the client closed the connection mid-body")
            pace.record(trio.current_time() - started, len(data))
            return data
        raise BodyTimeout(
            f"the request body arrived slower than {self._config.body_min_bytes_per_second}"
            f" bytes/s or stopped for {self._config.body_stall_timeout_seconds} seconds"
        )

    # 3. respond

    async def _respond(self, request: Request, body: RequestBody, response: Response) -> bool:
        try:
            if isinstance(body._failure, ClientDisconnected):
                logger.debug(
                    "%s %s: not answered, the client went away", request.method, request.target
                )
                self._failure = "the client went away before the answer"
                return False
            close = self._should_close_after_response(request, body)
            await self._send_response(request, response, close)
        except (trio.BrokenResourceError, _WriteTimeout, RequestBodyError) as exc:
            logger.debug("%s %s: response abandoned: %r", request.method, request.target, exc)
            self._failure = f"response abandoned: {exc}" if str(exc) else "response abandoned"
            return False
        except Exception:
            logger.exception("response to %s %s failed", request.method, request.target)
            await self._refuse(500)  # only possible if the head has not gone out
            return False
        finally:
            body._release()
            await self._release(response)
        return await self._finish_cycle()

    def _should_close_after_response(self, request: Request, body: RequestBody) -> bool:
        """Decided before the head goes out, so that the head can say `Connection: close`."""
        if self._shutdown.begun or body._failure is not None:
            return True
        conn = self._h11
        if conn.their_state is not h11.SEND_BODY:
            return False  # the body was read; or h11 closes anyway (MUST_CLOSE)
        declared = request.content_length
        if conn.they_are_waiting_for_100_continue:
            return declared != 0  # an empty body is drained without waiting for the client
        if declared is None:
            return False  # chunked: drain and see
        return declared - body.bytes_received > self._config.drain_body_bytes

    async def _send_response(self, request: Request, response: Response, close: bool) -> None:
        body = response.body
        length = len(body) if isinstance(body, bytes) else response.content_length
        # Build (and so validate) the head before h11 sees it: a bad header from the handler
        # raises here, with the connection still able to answer 500.
        head = h11.Response(
            status_code=response.status,
            reason=reason_phrase(response.status),
            headers=response_headers(response, length, close=close, date=_dates.at(time.time())),
        )
        head_bytes = self._encode(head)
        self._status_sent = response.status
        if response_has_no_body(request.method, response.status):
            await self._send(head_bytes + self._encode(h11.EndOfMessage()))
        elif isinstance(body, bytes):
            if len(body) <= _COALESCE_BYTES:
                parts = [head_bytes]
                if body:
                    parts += self._h11.send_with_data_passthrough(h11.Data(data=body)) or []
                parts.append(self._encode(h11.EndOfMessage()))
                await self._send(b"".join(parts))
                self._body_bytes_sent += len(body)
            else:
                await self._send(head_bytes)
                await self._send_data(body)
                await self._send_end()
        elif isinstance(body, WriterBody):
            await self._send(head_bytes)
            await body.write(self._send_piece)
            await self._send_end()
        else:
            await self._send(head_bytes)
            async for piece in body:
                await self._send_piece(piece)
            await self._send_end()

    async def _send_piece(self, piece: bytes) -> None:
        if piece:
            await self._send_data(piece)

    async def _send_data(self, piece: bytes) -> None:
        parts = self._h11.send_with_data_passthrough(h11.Data(data=piece)) or []
        if len(parts) == 1:
            await self._send(parts[0])
        elif len(piece) <= _COALESCE_BYTES:
            await self._send(b"".join(parts))
        else:  # chunked: size line, the piece itself (not copied), CRLF
            for part in parts:
                await self._send(part)
        self._body_bytes_sent += len(piece)

    async def _send_end(self) -> None:
        end = self._encode(h11.EndOfMessage())
        if end:  # b"" when the length was declared
            await self._send(end)

    async def _release(self, response: Response) -> None:
        """Close the response's body and resources, even while this task is cancelled."""
        closers: list[Callable[[], Awaitable[object]]] = []
        close_body = getattr(response.body, "aclose", None)  # async generators
        if close_body is not None:
            closers.append(close_body)
        if response.aclose is not None:
            closers.append(response.aclose)
        if not closers:
            return
        deadline = trio.current_time() + self._config.aclose_timeout_seconds
        with trio.CancelScope(deadline=deadline, shield=True) as closing:
            for close in closers:
                try:
                    await close()
                except Exception:
                    logger.exception("closing a response failed")
        if closing.cancelled_caught:
            logger.warning(
                "closing a response took over %s seconds", self._config.aclose_timeout_seconds
            )

    # 4. drain, 5. next

    async def _finish_cycle(self) -> bool:
        conn = self._h11
        if conn.our_state is h11.DONE and conn.their_state is h11.SEND_BODY:
            if not await self._drain():
                return False
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _drain(self) -> bool:
        """Discard the rest of the request body; False if it is too long, slow or broken."""
        conn = self._h11
        budget = self._config.drain_body_bytes
        with trio.move_on_after(self._config.drain_timeout_seconds):
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    return False
                if event is h11.NEED_DATA:
                    try:
                        data = await self._stream.receive_some(_BODY_RECEIVE_BYTES)
                    except trio.BrokenResourceError:
                        return False
                    if not data:
                        return False
                    self._feed(data)
                elif type(event) is h11.Data:
                    budget -= len(event.data)
                    if budget < 0:
                        return False
                elif type(event) is h11.EndOfMessage:
                    return True
                else:
                    return False
        return False

    # writing

    async def _refuse(self, status: int) -> None:
        """Answer `status` with an empty body and `Connection: close`, if h11 still can."""
        conn = self._h11
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # part of a response went out already; closing is the only signal left
        headers = [
            (b"date", _dates.at(time.time())),
            (b"server", SERVER_NAME),
            (b"content-length", b"0"),
            (b"connection", b"close"),
        ]
        try:
            head = self._encode(
                h11.Response(status_code=status, headers=headers, reason=reason_phrase(status))
            )
            await self._send(head + self._encode(h11.EndOfMessage()))
            self._status_sent = status
        except (h11.LocalProtocolError, trio.BrokenResourceError, _WriteTimeout) as exc:
            logger.debug("could not send %s: %r", status, exc)

    # reporting

    def _begin_exchange(self) -> None:
        self._status_sent = 0
        self._body_bytes_sent = 0
        self._notes = {}
        self._failure = ""

    def _report(
        self, started: float, began: float, method: str, user_agent: str, bytes_in: int
    ) -> None:
        """Tell the observer how the exchange went (it must not raise; if it does, the
        request was still answered, so the error is only logged)."""
        exchange = Exchange(
            started=started,
            remote=self._remote,
            method=method,
            user_agent=user_agent,
            status=self._status_sent,
            bytes_in=bytes_in,
            bytes_out=self._body_bytes_sent,
            duration_seconds=trio.current_time() - began,
            notes=self._notes,
            failure=self._failure,
        )
        try:
            self._observer(exchange)
        except Exception:
            logger.exception("reporting a request failed")

    def _feed(self, data: bytes | bytearray) -> None:
        # h11 annotates bytes but appends to a bytearray, so a memory stream's bytearray
        # pieces work as they are; copying them to bytes would cost a pass over the body.
        self._h11.receive_data(cast(bytes, data))

    def _encode(self, event: h11.Event) -> bytes:
        return self._h11.send(event) or b""

    async def _send(self, data: bytes | bytearray | memoryview) -> None:
        with trio.move_on_after(self._config.write_timeout_seconds) as writing:
            await self._stream.send_all(data)
        if writing.cancelled_caught:
            raise _WriteTimeout(f"a write blocked for {self._config.write_timeout_seconds} seconds")
