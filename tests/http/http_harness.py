"""Drive relay.http without sockets: an h11 client on one end of a memory stream pair.

Imported by the test_http_*.py files next to it (pytest puts this folder on sys.path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import trio
import trio.testing

from relay.http import DEFAULT_HTTP_CONFIG, GracefulShutdown, Handler, HttpConfig, serve_connection


class RecordingStream(trio.abc.Stream):
    """The server's end of the pair, remembering every byte the server wrote."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Answer:
    response: h11.Response
    body: bytes
    informational: list[h11.InformationalResponse] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self.response.status_code)

    def header(self, name: str) -> str | None:
        for key, value in self.response.headers:
            if key == name.encode("ascii"):
                return bytes(value).decode("latin-1")
        return None


class H11Client:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                await self.stream.send_all(data)

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.stream.receive_some(1 << 16))

    async def answer(self) -> Answer:
        informational = []
        while True:
            event = await self.next_event()
            if type(event) is h11.InformationalResponse:
                informational.append(event)
                continue
            assert type(event) is h11.Response, event
            break
        body = bytearray()
        while True:
            part = await self.next_event()
            if type(part) is h11.Data:
                body += part.data
            else:
                assert type(part) is h11.EndOfMessage, part
                return Answer(event, bytes(body), informational)

    async def request(
        self,
        method: str,
        target: str = "/",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Answer:
        all_headers = [("host", "test"), *headers]
        if body is not None and not any(name == "transfer-encoding" for name, _ in headers):
            all_headers.append(("content-length", str(len(body))))
        await self.send(h11.Request(method=method, target=target, headers=all_headers))
        if body:
            await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())
        answer = await self.answer()
        self.next_cycle()
        return answer

    @staticmethod
    def simple_request(method: str, target: str) -> tuple[h11.Event, ...]:
        return (
            h11.Request(method=method, target=target, headers=[("host", "t")]),
            h11.EndOfMessage(),
        )

    def next_cycle(self) -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()

    async def receive_rest(self) -> bytes:
        """Raw bytes until the server closes (b"" if it closed right after the response)."""
        rest = bytearray()
        while data := await self.stream.receive_some(1 << 16):
            rest += data
        return bytes(rest)


@dataclass
class Served:
    client: H11Client
    server_stream: RecordingStream
    finished: trio.Event

    async def server_closed(self) -> bool:
        """Whether serve_connection returned once everything that can run has run."""
        await trio.testing.wait_all_tasks_blocked()
        return self.finished.is_set()


@asynccontextmanager
async def connected(
    handler: Handler,
    config: HttpConfig = DEFAULT_HTTP_CONFIG,
    *,
    shutdown: GracefulShutdown | None = None,
    lockstep: bool = False,
) -> AsyncIterator[Served]:
    if lockstep:
        client_stream, server_end = trio.testing.lockstep_stream_pair()
    else:
        client_stream, server_end = trio.testing.memory_stream_pair()
    server_stream = RecordingStream(server_end)
    finished = trio.Event()

    async def run() -> None:
        try:
            await serve_connection(
                server_stream, handler, config, client=("192.0.2.1", 4321), shutdown=shutdown
            )
        finally:
            finished.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        yield Served(H11Client(client_stream), server_stream, finished)
        nursery.cancel_scope.cancel()
