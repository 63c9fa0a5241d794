"""serve_http: listeners, the connections' nursery, the connection limit and shutdown.

Two nurseries (STYLE §4). The accept loops run in an inner nursery; each connection runs
`serve_connection` in an outer one the server owns, so that stopping the listeners does
not touch requests in flight.

Connection limit: an accept loop takes a slot from a `trio.Semaphore(max_connections)`
*before* it calls `accept()`, and a connection gives its slot back when it closes. At the
limit the server stops accepting; new clients wait in the kernel's accept backlog (and
beyond it, retry their SYN) until a connection closes. Chosen over "accept and answer
503": a refusal costs an accept, a read and a write, the very work the limit exists to
bound, and the server never holds more than `max_connections` sockets.

Shutdown, when `shutdown` is set: cancel the accept loops and close the listeners (new
connects are refused by the kernel), `GracefulShutdown.begin()` (idle keep-alive
connections close at once, busy ones answer with `Connection: close`), and give the
connections' nursery a deadline of `shutdown_grace_seconds`; what is still running then
is cancelled. Cancelling `serve_http` itself stops everything at once.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Sequence
from typing import Final

import trio

from relay.http.config import DEFAULT_HTTP_CONFIG, HttpConfig
from relay.http.connection import GracefulShutdown, Handler, serve_connection

logger = logging.getLogger("relay.http")

# accept() failures that mean "out of file descriptors or memory for now" (the list trio's
# own serve_listeners uses): pause and retry instead of dying.
_ACCEPT_RESOURCE_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
_ACCEPT_PAUSE_SECONDS: Final = 0.1


async def serve_http(
    handler: Handler,
    host: str,
    port: int,
    config: HttpConfig = DEFAULT_HTTP_CONFIG,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` on host:port (0: any free port) until cancelled or `shutdown` is set.

    Reports `(host, bound_port)` of the first listener through `task_status.started`.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    address = (str(bound[0]), int(bound[1]))
    await _serve(handler, listeners, config, shutdown, lambda: task_status.started(address))


async def serve_http_listeners(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    config: HttpConfig = DEFAULT_HTTP_CONFIG,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Like `serve_http`, on listeners the caller opened (tests pass in-memory ones)."""
    await _serve(handler, listeners, config, shutdown, task_status.started)


async def _serve(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    config: HttpConfig,
    shutdown: trio.Event | None,
    ready: Callable[[], object],
) -> None:
    graceful = GracefulShutdown()
    slots = trio.Semaphore(config.max_connections)
    try:
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(
                        _accept_loop, listener, slots, connections, handler, config, graceful
                    )
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


async def _accept_loop(
    listener: trio.abc.Listener[trio.abc.Stream],
    slots: trio.Semaphore,
    connections: trio.Nursery,
    handler: Handler,
    config: HttpConfig,
    graceful: GracefulShutdown,
) -> None:
    while True:
        await slots.acquire()  # at max_connections: stop accepting until one closes
        try:
            stream = await listener.accept()
        except OSError as exc:
            slots.release()
            if exc.errno not in _ACCEPT_RESOURCE_ERRNOS:
                raise
            logger.error("accept failed (%s); pausing for %s s", exc, _ACCEPT_PAUSE_SECONDS)
            await trio.sleep(_ACCEPT_PAUSE_SECONDS)
            continue
        except BaseException:
            slots.release()
            raise
        connections.start_soon(_run_connection, stream, slots, handler, config, graceful)


async def _run_connection(
    stream: trio.abc.Stream,
    slots: trio.Semaphore,
    handler: Handler,
    config: HttpConfig,
    graceful: GracefulShutdown,
) -> None:
    try:
        await serve_connection(
            stream, handler, config, client=_peer_address(stream), shutdown=graceful
        )
    finally:
        slots.release()


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
