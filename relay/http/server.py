"""serve_http: listeners, the connections' nursery, the connection limit and shutdown.

Two nurseries (STYLE §4). The accept loops run in an inner nursery; each connection runs
`serve_connection` in an outer one the server owns, so that stopping the listeners does
not touch requests in flight.

Connection limit: at most `max_connections` connections are served; a connection takes a
slot of a `trio.Semaphore(max_connections)` when it is accepted and gives it back when it
closes. The accept loops never stop accepting, so no client waits unanswered in the
kernel's backlog. A connection accepted at the limit:

1. sheds the longest-idle connection, if any (one that has sent nothing of a next
   request: kept alive between requests, or accepted and silent); that one closes
   quietly, as an idle connection may at any time, and the new one takes its slot;
2. otherwise gets `busy_answer()` (S3: 503 SlowDown) and is closed. The answer is one
   write, made without reading the request, by at most `max_busy_answers` tasks at once,
   each within `busy_answer_timeout_seconds`; beyond that many a new connection is closed
   unanswered. So refusing costs a bounded number of small tasks, never a slot.

Shutdown, when `shutdown` is set: cancel the accept loops and close the listeners (new
connects are refused by the kernel), `GracefulShutdown.begin()` (idle keep-alive
connections close at once, busy ones answer with `Connection: close`), and give the
connections' nursery a deadline of `shutdown_grace_seconds`; what is still running then
is cancelled. Cancelling `serve_http` itself stops everything at once.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio

from relay.http.config import DEFAULT_HTTP_CONFIG, HttpConfig
from relay.http.connection import GracefulShutdown, Handler, serve_connection
from relay.http.exchange import Exchange, ExchangeObserver, HttpActivity, ignore_exchange
from relay.http.messages import HttpDate, Response, default_busy_answer, render_busy_answer

logger = logging.getLogger("relay.http")

# accept() failures that mean "out of file descriptors or memory for now" (the list trio's
# own serve_listeners uses): pause and retry instead of dying.
_ACCEPT_RESOURCE_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
_ACCEPT_PAUSE_SECONDS: Final = 0.1
# What a busy answer reads and discards of the refused client's request at most.
_BUSY_DISCARD_BYTES: Final = 64 * 1024

_dates = HttpDate()


async def serve_http(
    handler: Handler,
    host: str,
    port: int,
    config: HttpConfig = DEFAULT_HTTP_CONFIG,
    *,
    shutdown: trio.Event | None = None,
    busy_answer: Callable[[], Response] = default_busy_answer,
    observer: ExchangeObserver = ignore_exchange,
    activity: HttpActivity | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` on host:port (0: any free port) until cancelled or `shutdown` is set.

    Reports `(host, bound_port)` of the first listener through `task_status.started`.
    `busy_answer` makes the response (with a bytes body) for connections over the limit.
    `observer` hears of every request answered or refused (`relay.http.exchange`), and
    `activity` counts connections and requests as they come and go.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    address = (str(bound[0]), int(bound[1]))
    await _serve(
        handler,
        listeners,
        config,
        shutdown,
        _Watch(busy_answer, observer, activity or HttpActivity()),
        lambda: task_status.started(address),
    )


async def serve_http_listeners(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    config: HttpConfig = DEFAULT_HTTP_CONFIG,
    *,
    shutdown: trio.Event | None = None,
    busy_answer: Callable[[], Response] = default_busy_answer,
    observer: ExchangeObserver = ignore_exchange,
    activity: HttpActivity | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Like `serve_http`, on listeners the caller opened (tests pass in-memory ones)."""
    watch = _Watch(busy_answer, observer, activity or HttpActivity())
    await _serve(handler, listeners, config, shutdown, watch, task_status.started)


@dataclass(frozen=True, slots=True)
class _Watch:
    """How the server answers at its limit, and who hears what it did."""

    busy_answer: Callable[[], Response]
    observer: ExchangeObserver
    activity: HttpActivity


@dataclass(slots=True)
class _Admission:
    """What the accept loops share: the slots, the idle registry, the 503 budget."""

    handler: Handler
    config: HttpConfig
    connections: trio.Nursery
    graceful: GracefulShutdown
    watch: _Watch
    slots: trio.Semaphore
    busy_answers: int = 0

    def admit(self, stream: trio.abc.Stream) -> None:
        try:
            self.slots.acquire_nowait()
        except trio.WouldBlock:
            pass
        else:
            self.connections.start_soon(self._run, stream, False)
            return
        if self.graceful.shed_idle():
            self.watch.activity.connections_shed += 1
            self.connections.start_soon(self._run, stream, True)
        elif self.busy_answers < self.config.max_busy_answers:
            self.busy_answers += 1
            self.connections.start_soon(self._refuse, stream)
        else:
            self.connections.start_soon(trio.aclose_forcefully, stream)

    async def _run(self, stream: trio.abc.Stream, wait_for_slot: bool) -> None:
        if wait_for_slot:  # the shed connection gives its slot back as it closes
            try:
                await self.slots.acquire()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        try:
            await serve_connection(
                stream,
                self.handler,
                self.config,
                client=_peer_address(stream),
                shutdown=self.graceful,
                observer=self.watch.observer,
                activity=self.watch.activity,
            )
        finally:
            self.slots.release()

    async def _refuse(self, stream: trio.abc.Stream) -> None:
        started, began = time.time(), trio.current_time()
        self.watch.activity.busy_answers += 1
        try:
            answer = render_busy_answer(self.watch.busy_answer(), _dates.at(time.time()))
            with trio.move_on_after(self.config.busy_answer_timeout_seconds):
                await stream.send_all(answer)
                if isinstance(stream, trio.abc.HalfCloseableStream):
                    await stream.send_eof()
                discarded = 0
                while discarded < _BUSY_DISCARD_BYTES:
                    data = await stream.receive_some(_BUSY_DISCARD_BYTES)
                    if not data:
                        break
                    discarded += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client left; nothing to answer
        except Exception:
            logger.exception("answering a connection over the limit failed")
        finally:
            self.busy_answers -= 1
            await trio.aclose_forcefully(stream)
            self._report_refusal(stream, started, began)

    def _report_refusal(self, stream: trio.abc.Stream, started: float, began: float) -> None:
        peer = _peer_address(stream)
        refused = Exchange(
            started=started,
            remote="" if peer is None else f"{peer[0]}:{peer[1]}",
            method="",
            user_agent="",
            status=503,
            bytes_in=0,
            bytes_out=0,
            duration_seconds=trio.current_time() - began,
            failure=f"over the connection limit ({self.config.max_connections})",
        )
        try:
            self.watch.observer(refused)
        except Exception:
            logger.exception("reporting a refused connection failed")


async def _serve(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    config: HttpConfig,
    shutdown: trio.Event | None,
    watch: _Watch,
    ready: Callable[[], object],
) -> None:
    graceful = GracefulShutdown()
    slots = trio.Semaphore(config.max_connections)
    try:
        async with trio.open_nursery() as connections:
            admission = _Admission(handler, config, connections, graceful, watch, slots)
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(_accept_loop, listener, admission)
                ready()
                if shutdown is None:
                    await trio.sleep_forever()
                else:
                    await shutdown.wait()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            logger.info("shutting down: %d connections open", config.max_connections - slots.value)
            graceful.begin()
            connections.cancel_scope.deadline = trio.current_time() + config.shutdown_grace_seconds
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def _accept_loop(listener: trio.abc.Listener[trio.abc.Stream], admission: _Admission) -> None:
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in _ACCEPT_RESOURCE_ERRNOS:
                raise
            logger.error("accept failed (%s); pausing for %s s", exc, _ACCEPT_PAUSE_SECONDS)
            await trio.sleep(_ACCEPT_PAUSE_SECONDS)
            continue
        admission.admit(stream)


def _peer_address(stream: trio.abc.Stream) -> tuple[str, int] | None:
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        peer = stream.socket.getpeername()
    except OSError:  # already reset
        return None
    if isinstance(peer, tuple):
        return (str(peer[0]), int(peer[1]))
    return None
