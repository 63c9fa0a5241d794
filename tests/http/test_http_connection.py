"""The connection lifecycle, driven by an h11 client over memory streams (no sockets)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import h11
import pytest
import trio
import trio.testing
from http_harness import connected
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.http import (
    BadRequestBody,
    BodyTimeout,
    ClientDisconnected,
    HttpConfig,
    Request,
    RequestBody,
    Response,
    WriterBody,
)
from relay.version import VERSION

CONFIG = HttpConfig()


async def echo(request: Request, body: RequestBody) -> Response:
    received = bytearray()
    async for piece in body:
        received += piece
    return Response(
        200, [("x-method", request.method), ("x-target", request.target)], bytes(received)
    )


async def refuse(request: Request, body: RequestBody) -> Response:
    return Response(403, [("content-type", "text/plain")], b"no")


# keep-alive, bodies


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    seen: list[tuple[str, str, tuple[str, int] | None]] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        seen.append((request.method, request.target, request.client))
        return await echo(request, body)

    async with connected(handler) as served:
        first = await served.client.request("GET", "/a")
        second = await served.client.request("PUT", "/b/k%20x?uploads=", body=b"hello")
        third = await served.client.request("GET", "/c")
        assert [a.status for a in (first, second, third)] == [200, 200, 200]
        assert second.body == b"hello"
        assert second.header("x-target") == "/b/k%20x?uploads="
        assert first.header("connection") is None
        assert not await served.server_closed()
    assert seen == [
        ("GET", "/a", ("192.0.2.1", 4321)),
        ("PUT", "/b/k%20x?uploads=", ("192.0.2.1", 4321)),
        ("GET", "/c", ("192.0.2.1", 4321)),
    ]


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with connected(echo) as served:
        raw = (
            b"PUT /one HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        await served.client.stream.send_all(raw)
        await trio.testing.wait_all_tasks_blocked()
        answered = bytes(await served.client.stream.receive_some())
    first, second = answered.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ")
    assert b"x-target: /one\r\n" in first
    assert first.endswith(b"\r\n\r\nabc")
    assert second.startswith(b"200 ")
    assert b"x-target: /two\r\n" in second


@settings(max_examples=25, deadline=None)
@given(pieces=st.lists(st.binary(min_size=1, max_size=300), max_size=8))
async def test_a_chunked_request_body_is_reassembled(pieces: list[bytes]) -> None:
    async with connected(echo) as served:
        client = served.client
        await client.send(
            h11.Request(
                method="PUT",
                target="/k",
                headers=[("host", "t"), ("transfer-encoding", "chunked")],
            )
        )
        for piece in pieces:
            await client.send(h11.Data(data=piece))
        await client.send(h11.EndOfMessage())
        answer = await client.answer()
    assert answer.body == b"".join(pieces)


async def test_a_content_length_body_is_read_in_pieces_no_larger_than_asked() -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    sizes: list[int] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        assert request.content_length == len(payload)
        received = bytearray()
        while piece := await body.receive_some(1000):
            sizes.append(len(piece))
            received += piece
        return Response(200, [], bytes(received))

    async with connected(handler) as served:
        answer = await served.client.request("PUT", "/k", body=payload)
    assert answer.body == payload
    assert max(sizes) == 1000
    assert sum(sizes) == len(payload)


async def test_a_body_read_after_the_response_is_refused() -> None:
    kept: list[RequestBody] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        kept.append(body)
        return Response(200, [])

    async with connected(handler) as served:
        await served.client.request("PUT", "/k", body=b"abc")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError):
            await kept[0].receive_some()


async def test_broken_chunk_framing_raises_bad_request_body_and_answers_400() -> None:
    errors: list[BaseException] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        try:
            await body.receive_some()
        except BadRequestBody as exc:
            errors.append(exc)
            raise
        raise AssertionError("the body should not parse")

    async with connected(handler) as served:
        await served.client.stream.send_all(
            b"PUT /k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        head = await served.client.receive_rest()
        assert await served.server_closed()
    assert head.startswith(b"HTTP/1.1 400 ")
    assert len(errors) == 1


async def test_a_client_that_disconnects_mid_body_gets_no_answer() -> None:
    errors: list[BaseException] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        try:
            async for _ in body:
                pass
        except ClientDisconnected as exc:
            errors.append(exc)
        return Response(500, [], b"should not be sent")

    async with connected(handler) as served:
        await served.client.stream.send_all(
            b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly some"
        )
        await served.client.stream.send_eof()  # type: ignore[attr-defined]
        assert await served.server_closed()
    assert len(errors) == 1
    assert bytes(served.server_stream.sent) == b""


async def test_http_1_0_requests_are_answered_and_the_connection_closes() -> None:
    async with connected(echo) as served:
        await served.client.stream.send_all(b"GET /old HTTP/1.0\r\n\r\n")
        raw = await served.client.receive_rest()
        assert await served.server_closed()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nconnection: close\r\n" in raw.lower()


# 100-continue and early responses


async def test_100_continue_goes_out_only_when_the_handler_first_reads() -> None:
    sent_before_reading: list[bytes] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        if request.expects_continue:
            await trio.testing.wait_all_tasks_blocked()
            sent_before_reading.append(bytes(served.server_stream.sent))
        return await echo(request, body)

    async with connected(handler) as served:
        client = served.client
        await client.send(
            h11.Request(
                method="PUT",
                target="/k",
                headers=[("host", "t"), ("content-length", "5"), ("expect", "100-continue")],
            )
        )
        event = await client.next_event()
        assert type(event) is h11.InformationalResponse
        assert event.status_code == 100
        await client.send(h11.Data(data=b"hello"), h11.EndOfMessage())
        answer = await client.answer()
        client.next_cycle()
        again = await client.request("GET", "/next")  # the connection is kept
    assert sent_before_reading == [b""]
    assert answer.body == b"hello"
    assert again.status == 200


async def test_100_continue_is_never_sent_when_the_handler_refuses_first() -> None:
    async with connected(refuse) as served:
        client = served.client
        await client.send(
            h11.Request(
                method="PUT",
                target="/k",
                headers=[("host", "t"), ("content-length", "5"), ("expect", "100-continue")],
            )
        )
        answer = await client.answer()  # the client never sent the body
        assert answer.status == 403
        assert answer.informational == []
        assert answer.header("connection") == "close"
        assert await client.receive_rest() == b""
        assert await served.server_closed()
    assert b" 100 " not in bytes(served.server_stream.sent)


async def test_an_empty_body_with_expect_is_refused_without_closing() -> None:
    async with connected(refuse) as served:
        refused = await served.client.request(
            "PUT", "/k", headers=[("expect", "100-continue")], body=b""
        )
        after = await served.client.request("GET", "/next")
    assert refused.header("connection") is None
    assert (refused.status, after.status) == (403, 403)


async def test_an_early_response_drains_a_small_body_and_keeps_the_connection() -> None:
    async with connected(refuse, HttpConfig(drain_body_bytes=1000)) as served:
        refused = await served.client.request("PUT", "/k", body=b"x" * 1000)
        after = await served.client.request("GET", "/next")
        assert not await served.server_closed()
    assert refused.header("connection") is None
    assert (refused.status, after.status) == (403, 403)


async def test_an_early_response_closes_when_the_declared_body_exceeds_the_drain_limit() -> None:
    async with connected(refuse, HttpConfig(drain_body_bytes=1000)) as served:
        client = served.client
        await client.send(
            h11.Request(
                method="PUT", target="/k", headers=[("host", "t"), ("content-length", "1001")]
            ),
            h11.Data(data=b"x" * 500),
        )
        answer = await client.answer()
        assert answer.header("connection") == "close"
        assert await client.receive_rest() == b""
        assert await served.server_closed()


async def test_an_early_response_to_a_long_chunked_body_closes_after_the_drain_limit() -> None:
    async with connected(refuse, HttpConfig(drain_body_bytes=1000)) as served:
        client = served.client
        await client.send(
            h11.Request(
                method="PUT", target="/k", headers=[("host", "t"), ("transfer-encoding", "chunked")]
            )
        )
        answer = await client.answer()
        assert answer.header("connection") is None  # the length is unknown when it is sent
        assert not await served.server_closed()  # draining, within the limit so far
        await client.send(h11.Data(data=b"x" * 800))
        assert not await served.server_closed()
        await client.send(h11.Data(data=b"x" * 800))
        assert await served.server_closed()


# timeouts (fake clock)


async def test_a_partial_head_times_out_with_408(autojump_clock: trio.abc.Clock) -> None:
    async with connected(echo) as served:
        await served.client.stream.send_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        raw = await served.client.receive_rest()
        assert trio.current_time() == pytest.approx(CONFIG.header_timeout_seconds)
    assert raw.startswith(b"HTTP/1.1 408 ")


async def test_a_silent_new_connection_closes_quietly_after_the_header_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected(echo) as served:
        assert await served.client.receive_rest() == b""
        assert trio.current_time() == pytest.approx(CONFIG.header_timeout_seconds)


async def test_a_kept_alive_connection_closes_after_the_idle_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected(echo) as served:
        await trio.sleep(10)
        await served.client.request("GET", "/")
        answered_at = trio.current_time()
        assert await served.client.receive_rest() == b""
        idle = trio.current_time() - answered_at
    assert idle == pytest.approx(CONFIG.keepalive_idle_timeout_seconds)


async def test_the_header_timeout_restarts_at_the_first_byte_of_a_later_request(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected(echo) as served:
        await served.client.request("GET", "/")
        await trio.sleep(70)  # idle, under the 75 s keep-alive limit
        await served.client.stream.send_all(b"GET /slow HTTP/1.1\r\n")
        started = trio.current_time()
        raw = await served.client.receive_rest()
        waited = trio.current_time() - started
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert waited == pytest.approx(CONFIG.header_timeout_seconds)


async def test_a_stalled_body_raises_body_timeout_and_answers_408(
    autojump_clock: trio.abc.Clock,
) -> None:
    errors: list[BaseException] = []

    async def handler(request: Request, body: RequestBody) -> Response:
        try:
            async for _ in body:
                pass
        except BodyTimeout as exc:
            errors.append(exc)
            raise
        raise AssertionError("the body should stall")

    async with connected(handler) as served:
        await served.client.stream.send_all(
            b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"
        )
        sent_at = trio.current_time()
        raw = await served.client.receive_rest()
        stalled = trio.current_time() - sent_at
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert stalled == pytest.approx(CONFIG.body_stall_timeout_seconds)
    assert len(errors) == 1


async def test_a_handler_may_answer_a_body_timeout_itself_and_the_connection_closes(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def handler(request: Request, body: RequestBody) -> Response:
        try:
            await body.receive_some()
        except BodyTimeout:
            return Response(400, [], b"RequestTimeout")
        raise AssertionError("the body should stall")

    async with connected(handler) as served:
        await served.client.stream.send_all(
            b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
        )
        answer = await served.client.answer()
        assert (answer.status, answer.body) == (400, b"RequestTimeout")
        assert answer.header("connection") == "close"
        assert await served.client.receive_rest() == b""


# malformed and oversized heads


async def test_garbage_gets_400_and_the_connection_closes() -> None:
    async with connected(echo) as served:
        await served.client.stream.send_all(b"HELLO THERE\r\n\r\n")
        raw = await served.client.receive_rest()
        assert await served.server_closed()
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in raw.lower()


@pytest.mark.parametrize(("header_bytes", "status"), [(1500, 200), (2100, 431)])
async def test_a_head_over_max_header_bytes_gets_431(header_bytes: int, status: int) -> None:
    head = b"GET / HTTP/1.1\r\nHost: t\r\nx-big: " + b"a" * header_bytes + b"\r\n\r\n"
    async with connected(echo, HttpConfig(max_header_bytes=2048)) as served:
        await served.client.stream.send_all(head)  # one write: the server sees it all at once
        answer = await served.client.answer()
        if status == 431:
            assert await served.server_closed()
    assert answer.status == status


# responses


async def test_head_responses_carry_content_length_but_no_body() -> None:
    async def handler(request: Request, body: RequestBody) -> Response:
        if request.target == "/declared":
            return Response(200, [("content-length", "1234")])
        return Response(200, [("content-type", "text/plain")], b"the GET body")

    async with connected(handler) as served:
        declared = await served.client.request("HEAD", "/declared")
        same_as_get = await served.client.request("HEAD", "/same")
        after = await served.client.request("GET", "/same")  # no stray body bytes in between
    assert (declared.header("content-length"), declared.body) == ("1234", b"")
    assert (same_as_get.header("content-length"), same_as_get.body) == ("12", b"")
    assert after.body == b"the GET body"


async def test_responses_carry_date_and_server_headers() -> None:
    async with connected(echo) as served:
        answer = await served.client.request("GET", "/")
    assert answer.header("server") == f"relay/{VERSION}"
    assert (answer.header("date") or "").endswith(" GMT")


async def pieces_of(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        await trio.lowlevel.checkpoint()
        yield piece


@pytest.mark.parametrize("known_length", [True, False])
async def test_a_streamed_body_is_sent_with_or_without_a_known_length(known_length: bool) -> None:
    pieces = [b"a" * 70_000, b"", b"b" * 10, b"c" * 100_000]
    total = sum(map(len, pieces))

    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], pieces_of(*pieces), content_length=total if known_length else None)

    async with connected(handler) as served:
        answer = await served.client.request("GET", "/")
        again = await served.client.request("GET", "/")
    assert answer.body == again.body == b"".join(pieces)
    if known_length:
        assert (answer.header("content-length"), answer.header("transfer-encoding")) == (
            str(total),
            None,
        )
    else:
        assert (answer.header("content-length"), answer.header("transfer-encoding")) == (
            None,
            "chunked",
        )


async def test_a_writer_body_runs_its_own_tasks_inside_the_connection() -> None:
    """A WriterBody may open a nursery (prefetching tasks) for the length of the body."""
    pieces = [b"x" * 50_000, b"y" * 7, b"z" * 90_000]

    async def write(send: Callable[[bytes], Awaitable[None]]) -> None:
        sender, receiver = trio.open_memory_channel[bytes](1)

        async def produce() -> None:
            async with sender:
                for piece in pieces:
                    await sender.send(piece)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async with receiver:
                async for piece in receiver:
                    await send(piece)

    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], WriterBody(write), content_length=sum(map(len, pieces)))

    async with connected(handler) as served:
        answer = await served.client.request("GET", "/")
        again = await served.client.request("GET", "/")
    assert answer.body == again.body == b"".join(pieces)


async def test_a_streamed_body_is_pulled_only_as_fast_as_the_client_reads() -> None:
    pulled = 0

    async def many_pieces() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 1000

    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], many_pieces(), content_length=100_000)

    async with connected(handler, lockstep=True) as served:
        await served.client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
        await served.client.send(h11.EndOfMessage())
        await trio.testing.wait_all_tasks_blocked()
        assert pulled <= 1  # blocked writing the head or the first piece
        answer = await served.client.answer()
    assert pulled == 100
    assert len(answer.body) == 100_000


class Closer:
    def __init__(self) -> None:
        self.calls = 0

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self.calls += 1


async def test_aclose_is_awaited_after_a_successful_response() -> None:
    closer = Closer()

    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], pieces_of(b"abc"), aclose=closer.aclose)

    async with connected(handler) as served:
        answer = await served.client.request("GET", "/")
        assert closer.calls == 1
    assert answer.body == b"abc"


async def test_aclose_is_awaited_and_the_error_logged_when_the_body_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closer = Closer()

    async def failing_body() -> AsyncIterator[bytes]:
        yield b"first"
        raise OSError("disk on fire")

    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], failing_body(), content_length=100, aclose=closer.aclose)

    async with connected(handler) as served:
        await served.client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
        await served.client.send(h11.EndOfMessage())
        raw = await served.client.receive_rest()  # head and 5 of 100 bytes, then the close
        assert await served.server_closed()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"\r\n\r\nfirst")
    assert closer.calls == 1
    assert "disk on fire" in caplog.text


async def test_aclose_is_awaited_when_the_client_goes_away_mid_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closer = Closer()
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 10_000

    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], endless(), aclose=closer.aclose)

    caplog.set_level(logging.DEBUG, logger="relay.http")
    async with connected(handler, lockstep=True) as served:
        await served.client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
        await served.client.send(h11.EndOfMessage())
        await served.client.stream.receive_some(100)
        await served.client.stream.aclose()
        assert await served.server_closed()
    assert closer.calls == 1
    assert pulled < 5
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_handler_exception_gives_500_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(request: Request, body: RequestBody) -> Response:
        raise KeyError("the handler's bug")

    async with connected(handler) as served:
        answer = await served.client.request("GET", "/boom")
        assert (answer.status, answer.body, answer.header("connection")) == (500, b"", "close")
        assert await served.server_closed()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "relay.http"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "the handler's bug" in caplog.text


async def test_a_response_with_an_invalid_header_gives_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [("x-bad", "line\r\nbreak")], b"")

    async with connected(handler) as served:
        answer = await served.client.request("GET", "/")
    assert answer.status == 500
    assert "response to GET / failed" in caplog.text


async def test_a_peer_that_closes_between_requests_ends_the_connection_quietly() -> None:
    async with connected(echo) as served:
        await served.client.request("GET", "/")
        await served.client.stream.aclose()
        assert await served.server_closed()


async def test_a_client_that_stops_reading_is_dropped_after_the_write_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def handler(request: Request, body: RequestBody) -> Response:
        return Response(200, [], pieces_of(b"x" * 1000, b"y" * 1000))

    async with connected(handler, lockstep=True) as served:
        await served.client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
        await served.client.send(h11.EndOfMessage())
        await trio.sleep(CONFIG.write_timeout_seconds - 1)
        assert not served.finished.is_set()
        await trio.sleep(2)
        assert served.finished.is_set()
