"""serve_http: the connection limit, graceful shutdown, and one run over a real socket."""

from __future__ import annotations

import http.client
import math
from functools import partial

import pytest
import trio
import trio.testing
from http_harness import H11Client

from relay.http import (
    HttpConfig,
    Request,
    RequestBody,
    Response,
    serve_http,
    serve_http_listeners,
)


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """Hands the server one end of a memory stream pair per `connect()`."""

    def __init__(self) -> None:
        self._incoming, self._waiting = trio.open_memory_channel[trio.abc.Stream](math.inf)
        self.accepted = 0
        self.closed = False

    def connect(self) -> H11Client:
        if self.closed:
            raise ConnectionRefusedError("the listener is closed")
        client, server = trio.testing.memory_stream_pair()
        self._incoming.send_nowait(server)
        return H11Client(client)

    async def accept(self) -> trio.abc.Stream:
        stream = await self._waiting.receive()
        self.accepted += 1
        return stream

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def echo(request: Request, body: RequestBody) -> Response:
    received = bytearray()
    async for piece in body:
        received += piece
    return Response(200, [], bytes(received))


async def test_at_max_connections_the_server_stops_accepting_until_one_closes() -> None:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_http_listeners, echo, [listener], HttpConfig(max_connections=2))
        first, second, third = listener.connect(), listener.connect(), listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        assert listener.accepted == 2
        assert (await first.request("PUT", "/", body=b"1")).body == b"1"
        assert (await second.request("PUT", "/", body=b"2")).body == b"2"
        await first.stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert listener.accepted == 3
        assert (await third.request("PUT", "/", body=b"3")).body == b"3"
        nursery.cancel_scope.cancel()


async def test_graceful_shutdown_finishes_requests_in_flight_and_refuses_new_ones() -> None:
    listener = MemoryListener()
    shutdown = trio.Event()
    release = trio.Event()
    returned = trio.Event()

    async def handler(request: Request, body: RequestBody) -> Response:
        if request.target == "/slow":
            await release.wait()
        return Response(200, [], b"done")

    async def serve() -> None:
        await serve_http_listeners(handler, [listener], HttpConfig(), shutdown=shutdown)
        returned.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        busy, idle = listener.connect(), listener.connect()
        assert (await idle.request("GET", "/")).status == 200  # now idle, kept alive
        await busy.send(*H11Client.simple_request("GET", "/slow"))
        await trio.testing.wait_all_tasks_blocked()

        shutdown.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await idle.receive_rest() == b""  # idle connections close at once
        with pytest.raises(ConnectionRefusedError):
            listener.connect()
        assert not returned.is_set()

        release.set()
        answer = await busy.answer()
        assert (answer.status, answer.body) == (200, b"done")
        assert answer.header("connection") == "close"
        assert await busy.receive_rest() == b""
        await returned.wait()


async def test_shutdown_cancels_what_still_runs_after_the_grace_period(
    autojump_clock: trio.abc.Clock,
) -> None:
    listener = MemoryListener()
    shutdown = trio.Event()
    config = HttpConfig()

    async def stuck(request: Request, body: RequestBody) -> Response:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_http_listeners, stuck, [listener], config, shutdown=shutdown)
        )
        client = listener.connect()
        await client.send(*H11Client.simple_request("GET", "/"))
        await trio.sleep(1)
        shutdown.set()
        asked_at = trio.current_time()
    assert trio.current_time() - asked_at == pytest.approx(config.shutdown_grace_seconds)
    assert await client.receive_rest() == b""


def put_then_get_over_one_socket(port: int, payload: bytes) -> tuple[int, bytes, bool]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("PUT", "/b/key", body=payload)
        put = connection.getresponse()
        put_status = put.status
        put.read()
        socket_used = connection.sock
        connection.request("GET", "/b/key")
        got = connection.getresponse().read()
        return put_status, got, connection.sock is socket_used
    finally:
        connection.close()


async def test_serve_http_answers_a_real_client_over_a_socket() -> None:
    stored: dict[str, bytes] = {}

    async def store(request: Request, body: RequestBody) -> Response:
        if request.method == "PUT":
            stored[request.path] = b"".join([bytes(piece) async for piece in body])
            return Response(200, [])
        return Response(200, [("content-type", "application/octet-stream")], stored[request.path])

    payload = bytes(range(256)) * 4096  # 1 MiB
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(
            partial(serve_http, store, "127.0.0.1", 0, shutdown=shutdown)
        )
        assert host == "127.0.0.1"
        assert port > 0
        status, got, reused = await trio.to_thread.run_sync(
            put_then_get_over_one_socket, port, payload
        )
        shutdown.set()
    assert (status, got == payload, reused) == (200, True, True)
