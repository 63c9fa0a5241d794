"""The body's minimum transfer rate: the pure credit rule, then on a connection."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from http_harness import connected

from relay.http import HttpConfig, Request, RequestBody, Response
from relay.http.pacing import BodyPace


def test_a_body_at_the_minimum_rate_never_runs_out() -> None:
    pace = BodyPace(min_bytes_per_second=100, max_credit_seconds=60)
    for _ in range(10_000):
        assert pace.allowance_seconds() >= 59
        pace.record(waited_seconds=1.0, received_bytes=100)


def test_a_stopped_body_gets_the_stall_timeout() -> None:
    pace = BodyPace(min_bytes_per_second=100, max_credit_seconds=60)
    pace.record(waited_seconds=0.001, received_bytes=10 << 20)  # banked far more than 60 s
    assert pace.allowance_seconds() == 60


def test_a_one_byte_trickle_runs_out_within_the_stall_timeout() -> None:
    pace = BodyPace(min_bytes_per_second=512, max_credit_seconds=60)
    pace.record(waited_seconds=0.01, received_bytes=1_500_000)
    waited = 0.0
    while pace.allowance_seconds() >= 5:
        pace.record(waited_seconds=5, received_bytes=1)
        waited += 5
    assert waited <= 60


def test_a_body_at_half_the_rate_runs_out_within_twice_the_stall_timeout() -> None:
    pace = BodyPace(min_bytes_per_second=100, max_credit_seconds=60)
    seconds = 0
    while pace.allowance_seconds() >= 1:
        pace.record(waited_seconds=1, received_bytes=50)
        seconds += 1
    assert 110 <= seconds <= 120


def test_time_the_server_spends_not_reading_is_not_charged() -> None:
    pace = BodyPace(min_bytes_per_second=100, max_credit_seconds=60)
    # Only waits are recorded; a read served at once after a long pause costs nothing.
    pace.record(waited_seconds=0, received_bytes=1)
    assert pace.allowance_seconds() == 60


def test_the_rate_and_the_credit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BodyPace(0, 60)
    with pytest.raises(ValueError, match="positive"):
        BodyPace(100, 0)


async def read_all(request: Request, body: RequestBody) -> Response:
    size = 0
    async for piece in body:
        size += len(piece)
    return Response(200, [], str(size).encode())


async def test_a_trickled_body_times_out_though_bytes_keep_coming(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = HttpConfig()
    async with connected(read_all, config) as served:
        stream = served.client.stream
        await stream.send_all(b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n")
        await stream.send_all(b"x" * (1_500_000))
        started = trio.current_time()
        with trio.move_on_after(600) as trickling:  # the old stall timer never fired
            while not served.finished.is_set():
                await trio.sleep(5)
                try:
                    await stream.send_all(b"x")
                except trio.BrokenResourceError:
                    break
        assert not trickling.cancelled_caught
        raw = await served.client.receive_rest()
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert trio.current_time() - started <= config.body_stall_timeout_seconds + 5


async def test_a_slow_but_steady_body_is_received_whole(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = HttpConfig()
    rate = int(config.body_min_bytes_per_second)
    size = rate * 300  # five minutes of upload at exactly the minimum rate
    async with connected(read_all, config) as served:
        stream = served.client.stream
        await stream.send_all(b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(300):
            await trio.sleep(1)
            await stream.send_all(b"x" * rate)
        answer = await served.client.answer()
    assert (answer.status, answer.body) == (200, str(size).encode())
