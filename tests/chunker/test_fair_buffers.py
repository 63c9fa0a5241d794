"""Slow uploads do not hold the pool: idle partial chunks are spilled, then evicted."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from relay.chunker import ChunkBuffers, ChunkerConfig, chunk_into_store
from relay.chunker.buffers import SlowUpload
from relay.store.memory import MemoryBlobStore

CHUNK = 16 << 10
CONFIG = ChunkerConfig(chunk_size_bytes=CHUNK, max_puts_in_flight=2)


class BoundCheckingStore(MemoryBlobStore):
    """Checks at every put that pooled buffers and spills stay within the budget."""

    def __init__(self, pool: ChunkBuffers) -> None:
        super().__init__()
        self.pool = pool

    async def put(self, mh: bytes, data: bytes) -> None:
        assert_within_budget(self.pool)
        await super().put(mh, data)


def assert_within_budget(pool: ChunkBuffers) -> None:
    stats = pool.statistics()
    assert stats.in_use * CHUNK + stats.spilled_bytes <= stats.capacity * CHUNK


async def fast(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        await trio.lowlevel.checkpoint()
        yield data[start : start + 4096]


async def stalling(head: bytes, go_on: trio.Event, tail: bytes) -> AsyncIterator[bytes]:
    """`head` at once, then nothing until `go_on`, then `tail` a byte at a time."""
    async for piece in fast(head):
        yield piece
    await go_on.wait()
    for index in range(len(tail)):
        await trio.sleep(1)
        yield tail[index : index + 1]


def joined(store: MemoryBlobStore, leaves: tuple[object, ...]) -> bytes:
    return b"".join(store.blobs[leaf.cid.multihash] for leaf in leaves)  # type: ignore[attr-defined]


async def test_stalled_uploads_lend_their_buffers_and_still_complete(
    autojump_clock: trio.abc.Clock,
) -> None:
    pool = ChunkBuffers(CHUNK, capacity=2)
    store = BoundCheckingStore(pool)
    slow_heads = [os.urandom(CHUNK + 5000) for _ in range(2)]
    slow_tail = os.urandom(20)
    normal = os.urandom(CHUNK * 5 + 7)
    go_on = trio.Event()
    results: dict[str, bytes] = {}

    async def slow_upload(index: int) -> None:
        chunked = await chunk_into_store(
            stalling(slow_heads[index], go_on, slow_tail), store, CONFIG, buffers=pool
        )
        results[f"slow{index}"] = joined(store, chunked.leaves)

    async with trio.open_nursery() as nursery:
        for index in range(2):
            nursery.start_soon(slow_upload, index)
        await trio.sleep(1)  # each slow upload now sits on a partly filled pooled chunk
        assert pool.statistics().in_use == 2
        with trio.fail_after(1):  # the old pool made this wait for the slow clients forever
            chunked = await chunk_into_store(fast(normal), store, CONFIG, buffers=pool)
        results["normal"] = joined(store, chunked.leaves)
        stats = pool.statistics()
        assert stats.spills == 2
        assert stats.spilled_bytes == 10000  # exactly the slow uploads' partial chunks
        go_on.set()
    assert results == {
        "slow0": slow_heads[0] + slow_tail,
        "slow1": slow_heads[1] + slow_tail,
        "normal": normal,
    }
    stats = pool.statistics()
    assert (stats.in_use, stats.spilled_bytes, stats.evictions) == (0, 0, 0)


async def test_when_spills_fill_the_budget_the_longest_stalled_upload_is_evicted(
    autojump_clock: trio.abc.Clock,
) -> None:
    pool = ChunkBuffers(CHUNK, capacity=1)  # a spill of any size leaves less than a chunk
    store = BoundCheckingStore(pool)
    never = trio.Event()
    failures: list[BaseException] = []

    async def slow_upload() -> None:
        try:
            await chunk_into_store(
                stalling(os.urandom(CHUNK + 100), never, b"x"), store, CONFIG, buffers=pool
            )
        except SlowUpload as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_upload)
        await trio.sleep(1)
        normal = os.urandom(CHUNK * 3)
        with trio.fail_after(1):
            chunked = await chunk_into_store(fast(normal), store, CONFIG, buffers=pool)
        assert joined(store, chunked.leaves) == normal
    assert len(failures) == 1
    stats = pool.statistics()
    assert (stats.in_use, stats.spilled_bytes, stats.evictions) == (0, 0, 1)


async def test_a_fast_upload_waiting_briefly_on_its_client_keeps_its_buffer(
    autojump_clock: trio.abc.Clock,
) -> None:
    pool = ChunkBuffers(CHUNK, capacity=1, patience_seconds=0.05)
    store = BoundCheckingStore(pool)

    async def hiccups(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 4096):
            await trio.sleep(0.01)  # shorter than the patience
            yield data[start : start + 4096]

    first, second = os.urandom(CHUNK * 3), os.urandom(CHUNK * 3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: chunk_into_store(hiccups(first), store, CONFIG, buffers=pool))
        nursery.start_soon(lambda: chunk_into_store(hiccups(second), store, CONFIG, buffers=pool))
    assert pool.statistics().spills == 0


@pytest.mark.parametrize("pieces", [97, 4096, CHUNK + 1])
async def test_spilled_and_restored_chunks_keep_every_byte(
    autojump_clock: trio.abc.Clock, pieces: int
) -> None:
    pool = ChunkBuffers(CHUNK, capacity=2)
    store = BoundCheckingStore(pool)
    data = os.urandom(CHUNK * 3 + 999)

    async def pausing() -> AsyncIterator[bytes]:
        for start in range(0, len(data), pieces):
            await trio.sleep(1)  # every wait is long enough to be spilled
            yield data[start : start + pieces]

    async def competitor() -> None:
        for _ in range(5):
            await chunk_into_store(fast(os.urandom(CHUNK * 2)), store, CONFIG, buffers=pool)
            await trio.sleep(0.5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(competitor)
        chunked = await chunk_into_store(pausing(), store, CONFIG, buffers=pool)
    assert joined(store, chunked.leaves) == data
    stats = pool.statistics()
    assert (stats.in_use, stats.spilled_bytes) == (0, 0)


async def test_an_empty_buffer_reserved_for_a_stalled_client_is_lent_back(
    autojump_clock: trio.abc.Clock,
) -> None:
    # An upload reserves its next chunk's buffer before it reads from its client (so a
    # queued upload leaves its bytes in the kernel); a client that then stalls must not
    # keep that empty buffer from anyone.
    pool = ChunkBuffers(CHUNK, capacity=1)
    store = BoundCheckingStore(pool)
    go_on = trio.Event()
    head, tail = os.urandom(CHUNK), os.urandom(3)
    finished: dict[str, bytes] = {}

    async def stalled() -> None:
        chunked = await chunk_into_store(stalling(head, go_on, tail), store, CONFIG, buffers=pool)
        finished["stalled"] = joined(store, chunked.leaves)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stalled)
        await trio.sleep(1)
        assert pool.statistics().in_use == 1  # the reserved, empty buffer
        normal = os.urandom(CHUNK * 3)
        with trio.fail_after(1):
            chunked = await chunk_into_store(fast(normal), store, CONFIG, buffers=pool)
        assert joined(store, chunked.leaves) == normal
        go_on.set()
    assert finished == {"stalled": head + tail}
    stats = pool.statistics()
    assert (stats.in_use, stats.spills, stats.evictions) == (0, 0, 0)
