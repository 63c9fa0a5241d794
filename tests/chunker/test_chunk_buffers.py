"""The shared pool of chunk buffers: a bound on memory across uploads, never a leak."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from relay.chunker import ChunkBuffers, ChunkerConfig, chunk_into_store
from relay.store.memory import MemoryBlobStore

CHUNK = 16 << 10
CONFIG = ChunkerConfig(chunk_size_bytes=CHUNK, max_puts_in_flight=4)


async def body(data: bytes, piece: int = 5000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        await trio.lowlevel.checkpoint()
        yield data[start : start + piece]


class SlowStore(MemoryBlobStore):
    """Puts that take a while, so uploads pile up on the pool; records the peak in use."""

    def __init__(self, pool: ChunkBuffers) -> None:
        super().__init__()
        self.pool = pool
        self.peak_in_use = 0

    async def put(self, mh: bytes, data: bytes) -> None:
        self.peak_in_use = max(self.peak_in_use, self.pool.statistics().in_use)
        await trio.sleep(0.001)
        await super().put(mh, data)


async def test_uploads_share_the_pool_and_never_hold_more_than_its_capacity() -> None:
    pool = ChunkBuffers(CHUNK, capacity=5)
    store = SlowStore(pool)
    bodies = [os.urandom(CHUNK * 6 + 123) for _ in range(12)]
    results: list[bytes] = [b""] * len(bodies)

    async def upload(index: int) -> None:
        chunked = await chunk_into_store(body(bodies[index]), store, CONFIG, buffers=pool)
        results[index] = b"".join(store.blobs[leaf.cid.multihash] for leaf in chunked.leaves)

    async with trio.open_nursery() as nursery:
        for index in range(len(bodies)):
            nursery.start_soon(upload, index)
    assert results == bodies  # every byte arrived intact through reused buffers
    stats = pool.statistics()
    assert stats.in_use == 0
    assert store.peak_in_use == 5  # the pool was the limit, and it held
    assert stats.allocated == 5  # buffers are reused, not reallocated


async def test_a_store_never_sees_a_buffer_change_under_it() -> None:
    # A put receives a view of a pooled buffer; the buffer is refilled only after the put
    # returns, so what a put hashes is what it was given.
    pool = ChunkBuffers(CHUNK, capacity=2)

    class CheckingStore(MemoryBlobStore):
        async def put(self, mh: bytes, data: bytes) -> None:
            before = hashlib.sha256(data).digest()
            await trio.sleep(0.001)
            assert hashlib.sha256(data).digest() == before == mh[2:]
            await super().put(mh, data)

    data = os.urandom(CHUNK * 10)

    async def upload() -> None:
        await chunk_into_store(body(data), CheckingStore(), CONFIG, buffers=pool)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(upload)


@pytest.mark.parametrize("how", ["source fails", "cancelled"])
async def test_a_failed_or_cancelled_upload_returns_every_buffer(how: str) -> None:
    pool = ChunkBuffers(CHUNK, capacity=6)
    blocked = trio.Event()

    async def failing_body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield os.urandom(CHUNK)
        yield os.urandom(100)  # a partly filled buffer is held when the body fails
        if how == "cancelled":
            blocked.set()
            await trio.sleep_forever()
        raise OSError("client went away")

    class StuckStore(MemoryBlobStore):
        async def put(self, mh: bytes, data: bytes) -> None:
            await trio.sleep(0.01)
            await super().put(mh, data)

    with trio.move_on_after(5) as deadline:
        async with trio.open_nursery() as nursery:
            if how == "cancelled":

                async def cancel_when_blocked() -> None:
                    await blocked.wait()
                    await trio.testing.wait_all_tasks_blocked()
                    assert pool.statistics().in_use > 0
                    nursery.cancel_scope.cancel()

                nursery.start_soon(cancel_when_blocked)
                await chunk_into_store(failing_body(), StuckStore(), CONFIG, buffers=pool)
            else:
                with pytest.raises(OSError, match="went away"):
                    await chunk_into_store(failing_body(), StuckStore(), CONFIG, buffers=pool)
    assert not deadline.cancelled_caught
    assert pool.statistics().in_use == 0


async def test_small_bodies_do_not_take_pooled_buffers() -> None:
    pool = ChunkBuffers(CHUNK, capacity=1)
    await pool.acquire()  # the pool is exhausted ...
    store = MemoryBlobStore()
    with trio.fail_after(5):  # ... yet a body announced small goes through
        chunked = await chunk_into_store(
            body(b"x" * 4096), store, CONFIG, buffers=pool, expected_size=4096
        )
    assert chunked.size == 4096
