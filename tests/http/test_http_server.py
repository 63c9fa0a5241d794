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


async def test_at_max_connections_a_new_connection_sheds_the_longest_idle_one() -> None:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_http_listeners, echo, [listener], HttpConfig(max_connections=2))
        first, second = listener.connect(), listener.connect()
        assert (await first.request("PUT", "/", body=b"1")).body == b"1"  # idle first
        assert (await second.request("PUT", "/", body=b"2")).body == b"2"
        third = listener.connect()
        assert await first.receive_rest() == b""  # closed quietly, as idle ones may be
        assert (await third.request("PUT", "/", body=b"3")).body == b"3"
        assert (await second.request("PUT", "/", body=b"4")).body == b"4"  # untouched
        nursery.cancel_scope.cancel()


async def test_an_accepted_silent_connection_is_shed_too() -> None:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_http_listeners, echo, [listener], HttpConfig(max_connections=1))
        silent = listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        talker = listener.connect()
        assert await silent.receive_rest() == b""
        assert (await talker.request("PUT", "/", body=b"hi")).body == b"hi"
        nursery.cancel_scope.cancel()


def slow_down() -> Response:
    return Response(503, [("content-type", "application/xml")], b"<Error>SlowDown</Error>")


async def test_at_max_connections_with_none_idle_a_new_one_gets_503_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    listener = MemoryListener()
    release = trio.Event()

    async def busy(request: Request, body: RequestBody) -> Response:
        await release.wait()
        return Response(200, [], b"done")

    config = HttpConfig(max_connections=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_http_listeners, busy, [listener], config, busy_answer=slow_down)
        )
        working = [listener.connect() for _ in range(2)]
        for client in working:
            await client.send(*H11Client.simple_request("GET", "/"))
        await trio.testing.wait_all_tasks_blocked()
        refused = listener.connect()
        with trio.fail_after(0.1):  # the old server left it waiting until one closed
            answer = await refused.answer()
        assert (answer.status, answer.body) == (503, b"<Error>SlowDown</Error>")
        assert answer.header("connection") == "close"
        assert answer.header("content-length") == str(len(b"<Error>SlowDown</Error>"))
        await refused.stream.aclose()
        release.set()
        for client in working:
            assert (await client.answer()).status == 200  # the busy ones were never shed
        nursery.cancel_scope.cancel()


async def test_busy_answers_are_bounded_and_beyond_them_connections_just_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    listener = MemoryListener()

    async def stuck(request: Request, body: RequestBody) -> Response:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    config = HttpConfig(max_connections=1, max_busy_answers=1, busy_answer_timeout_seconds=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_http_listeners, stuck, [listener], config, busy_answer=slow_down)
        )
        working = listener.connect()
        await working.send(*H11Client.simple_request("GET", "/"))
        await trio.testing.wait_all_tasks_blocked()
        answered, dropped = listener.connect(), listener.connect()
        assert await dropped.receive_rest() == b""  # the one busy answer is taken
        started = trio.current_time()
        raw = await answered.receive_rest()  # the client never closes: the timeout does
        assert raw.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert trio.current_time() - started <= config.busy_answer_timeout_seconds
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
