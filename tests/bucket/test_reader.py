"""The read path's fetch-ahead: in order, bounded per stream and across streams."""

from __future__ import annotations

import pytest
import trio

from relay.bucket.reader import ReadAheadBudget, fetch_span, serve_spans
from relay.errorgroups import single_error
from relay.ipld.block import raw_block
from relay.store import MemoryBlobStore
from relay.unixfs import LeafSpan

CHUNKS = [bytes([n]) * 1000 for n in range(12)]


class SlowStore(MemoryBlobStore):
    """Counts the reads in flight at once; each takes a little while."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_on: bytes | None = None

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await trio.sleep(0.01)
            if mh == self.fail_on:
                raise OSError("disk on fire")
            return await super().get(mh, offset, length, expect=expect)
        finally:
            self.in_flight -= 1


async def stored_spans(store: MemoryBlobStore) -> list[LeafSpan]:
    spans = []
    for chunk in CHUNKS:
        block = raw_block(chunk)
        await store.put(block.cid.multihash, block.data)
        spans.append(LeafSpan(block.cid, len(chunk), 0, len(chunk)))
    return spans


async def read_all(
    store: MemoryBlobStore, spans: list[LeafSpan], budget: ReadAheadBudget | None
) -> bytes:
    send, receive = trio.open_memory_channel[bytes](1)
    received = []
    with single_error():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: serve_spans(store, spans, send, prefetch=4, budget=budget))
            async with receive:
                async for data in receive:
                    await trio.sleep(0.002)  # a consumer slower than nothing
                    received.append(data)
    return b"".join(received)


async def test_a_lone_stream_reads_its_prefetch_ahead_within_the_budget() -> None:
    store = SlowStore()
    spans = await stored_spans(store)
    budget = ReadAheadBudget(8)
    assert await read_all(store, spans, budget) == b"".join(CHUNKS)
    assert store.most_in_flight == 4
    assert budget.free == 8


async def test_many_streams_share_the_budget_and_each_still_progresses() -> None:
    store = SlowStore()
    spans = await stored_spans(store)
    budget = ReadAheadBudget(2)
    results: list[bytes] = []

    async def one() -> None:
        results.append(await read_all(store, spans, budget))

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(one)
    assert results == [b"".join(CHUNKS)] * 6
    # each stream's next chunk, plus at most the budget's two beyond: not 6 x 4
    assert store.most_in_flight <= 6 + 2
    assert budget.free == 2


async def test_without_a_budget_each_stream_reads_its_full_prefetch() -> None:
    store = SlowStore()
    spans = await stored_spans(store)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(read_all, store, spans, None)
    assert store.most_in_flight == 12


async def test_a_failed_read_gives_every_token_back() -> None:
    store = SlowStore()
    spans = await stored_spans(store)
    store.fail_on = spans[5].cid.multihash
    budget = ReadAheadBudget(3)
    with pytest.raises(OSError, match="disk on fire"):
        await read_all(store, spans, budget)
    assert budget.free == 3


async def test_a_cancelled_stream_gives_every_token_back() -> None:
    store = SlowStore()
    spans = await stored_spans(store)
    budget = ReadAheadBudget(3)
    with trio.move_on_after(0.025):
        await read_all(store, spans, budget)
    assert budget.free == 3


async def test_a_first_chunk_fetched_ahead_is_sent_first_and_not_fetched_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = SlowStore()
    spans = await stored_spans(store)
    first = await fetch_span(store, spans[0])
    reads = store.statistics().reads
    send, receive = trio.open_memory_channel[bytes](1)
    received = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: serve_spans(store, spans, send, prefetch=4, first=first))
        async with receive:
            async for data in receive:
                received.append(data)
    assert received == CHUNKS
    assert store.statistics().reads - reads == len(CHUNKS) - 1
