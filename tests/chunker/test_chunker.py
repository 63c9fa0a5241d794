"""The chunker: fixed-size leaves for any split of the input, whole-body digests in the
same pass, bounded puts in flight, bounded memory, and plain errors out."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import time
import tracemalloc
import zlib
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing

import blake3
import crc_reference
import google_crc32c
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.chunker import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    BodyTooLarge,
    Checksum,
    ChunkedBody,
    ChunkerConfig,
    chunk_into_store,
)
from relay.ipld.cid import CID
from relay.store import MemoryBlobStore

SMALL = ChunkerConfig(chunk_size_bytes=MIN_CHUNK_SIZE)
ALL_CHECKSUMS = frozenset(Checksum)


async def pieces_of(body: bytes, cuts: Iterable[int] = ()) -> AsyncGenerator[bytes, None]:
    """``body`` split at ``cuts`` (empty pieces included where cuts repeat)."""
    edges = [0, *sorted(cuts), len(body)]
    for start, end in itertools.pairwise(edges):
        await trio.lowlevel.checkpoint()
        yield body[start:end]


def expected_leaf_cids(body: bytes, chunk_size: int) -> list[CID]:
    """The spec, computed independently: sha2-256 raw CIDs of consecutive slices."""
    slices = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)] or [b""]
    return [CID.raw_sha256(hashlib.sha256(part).digest()) for part in slices]


def stored_bytes(store: MemoryBlobStore, result: ChunkedBody) -> bytes:
    return b"".join(store.blobs[leaf.cid.multihash] for leaf in result.leaves)


bodies = st.tuples(st.integers(0, 5 * MIN_CHUNK_SIZE + 7), st.integers(0, 2**32)).map(
    lambda size_seed: random.Random(size_seed[1]).randbytes(size_seed[0])
)


@given(body=bodies, data=st.data())
@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
async def test_leaves_concatenate_to_the_body_for_any_split(
    body: bytes, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10), label="cuts")
    store = MemoryBlobStore()
    result = await chunk_into_store(pieces_of(body, cuts), store, SMALL)
    assert stored_bytes(store, result) == body
    assert result.size == len(body)
    assert [leaf.size for leaf in result.leaves[:-1]] == [MIN_CHUNK_SIZE] * (len(result.leaves) - 1)
    assert 0 < result.leaves[-1].size <= MIN_CHUNK_SIZE or body == b""
    assert [leaf.cid for leaf in result.leaves] == expected_leaf_cids(body, MIN_CHUNK_SIZE)
    whole = await chunk_into_store(pieces_of(body), MemoryBlobStore(), SMALL)
    assert result == whole


@pytest.mark.parametrize("size", [0, 1, MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE, MIN_CHUNK_SIZE + 1])
async def test_chunk_boundaries_at_the_edges(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    store = MemoryBlobStore()
    result = await chunk_into_store(pieces_of(body, [size // 3]), store, SMALL)
    assert [leaf.cid for leaf in result.leaves] == expected_leaf_cids(body, MIN_CHUNK_SIZE)
    assert stored_bytes(store, result) == body


async def test_empty_body_is_one_leaf_of_empty_bytes() -> None:
    store = MemoryBlobStore()
    result = await chunk_into_store(pieces_of(b""), store, SMALL)
    assert [(leaf.cid, leaf.size) for leaf in result.leaves] == [
        (CID.raw_sha256(hashlib.sha256(b"").digest()), 0)
    ]
    assert store.blobs == {result.leaves[0].cid.multihash: b""}


async def test_source_with_no_pieces_is_the_empty_body() -> None:
    async def nothing() -> AsyncGenerator[bytes, None]:
        await trio.lowlevel.checkpoint()
        empty: list[bytes] = []
        for piece in empty:
            yield piece

    result = await chunk_into_store(nothing(), MemoryBlobStore(), SMALL)
    assert (result.size, [leaf.size for leaf in result.leaves]) == (0, [0])


def reference_digests(body: bytes) -> dict[str, bytes]:
    return {
        "etag-md5": hashlib.md5(body).digest(),
        "blake3": blake3.blake3(body).digest(),
        "crc32": zlib.crc32(body).to_bytes(4, "big"),
        "crc32c": google_crc32c.value(body).to_bytes(4, "big"),
        "crc64nvme": crc_reference.crc64nvme(body).to_bytes(8, "big"),
        "sha512": hashlib.sha512(body).digest(),
        "md5": hashlib.md5(body).digest(),
        "xxhash64": crc_reference.xxhash(body, "xxhash64"),
        "xxhash3": crc_reference.xxhash(body, "xxhash3"),
        "xxhash128": crc_reference.xxhash(body, "xxhash128"),
        "sha1": hashlib.sha1(body).digest(),
        "sha256": hashlib.sha256(body).digest(),
    }


def digests_of(result: ChunkedBody) -> dict[str, bytes]:
    return {
        "etag-md5": result.md5,
        "blake3": result.blake3,
        **{kind.value: digest for kind, digest in result.checksums.items()},
    }


@pytest.mark.parametrize(
    ("config", "size"),
    [
        (SMALL, 0),
        (SMALL, 3 * MIN_CHUNK_SIZE + 5),  # below the thread threshold: hashed in place
        (ChunkerConfig(chunk_size_bytes=256 << 10), (3 << 20) + 17),  # hashed in threads
    ],
    ids=["empty", "small-chunks", "threaded"],
)
async def test_whole_body_digests_match_the_reference_libraries(
    config: ChunkerConfig, size: int
) -> None:
    body = random.Random(size).randbytes(size)
    cuts = sorted(random.Random(1).sample(range(size + 1), min(size + 1, 7)))
    result = await chunk_into_store(
        pieces_of(body, cuts), MemoryBlobStore(), config, checksums=ALL_CHECKSUMS
    )
    assert digests_of(result) == reference_digests(body)


async def test_only_requested_checksums_are_computed() -> None:
    result = await chunk_into_store(
        pieces_of(b"abc"), MemoryBlobStore(), SMALL, checksums=frozenset({Checksum.CRC32C})
    )
    assert result.checksums == {Checksum.CRC32C: google_crc32c.value(b"abc").to_bytes(4, "big")}


@pytest.mark.parametrize("size", [100, 3 * MIN_CHUNK_SIZE + 5], ids=["small", "chunked"])
async def test_a_part_can_leave_out_the_whole_body_blake3(size: int) -> None:
    body = random.Random(size).randbytes(size)
    kept = await chunk_into_store(pieces_of(body), MemoryBlobStore(), SMALL, expected_size=size)
    left_out = await chunk_into_store(
        pieces_of(body), MemoryBlobStore(), SMALL, expected_size=size, whole_blake3=False
    )
    assert kept.blake3 == blake3.blake3(body).digest()
    assert left_out.blake3 is None
    assert (left_out.leaves, left_out.md5) == (kept.leaves, kept.md5)


async def test_repeated_chunks_are_stored_once_but_listed_every_time() -> None:
    body = b"\x07" * (3 * MIN_CHUNK_SIZE)
    store = MemoryBlobStore()
    result = await chunk_into_store(pieces_of(body), store, SMALL)
    assert len(result.leaves) == 3
    assert len(set(result.leaves)) == 1
    assert len(store.blobs) == 1


# -- limits and errors -------------------------------------------------------------------


async def test_body_at_the_limit_passes_and_one_byte_more_is_too_large() -> None:
    limit = 2 * MIN_CHUNK_SIZE + 3
    body = bytes(limit + 1)
    result = await chunk_into_store(
        pieces_of(body[:limit]), MemoryBlobStore(), SMALL, max_body_bytes=limit
    )
    assert result.size == limit
    async with aclosing(pieces_of(body, [limit])) as source:
        with pytest.raises(BodyTooLarge) as caught:
            await chunk_into_store(source, MemoryBlobStore(), SMALL, max_body_bytes=limit)
    assert caught.value.limit == limit


class SourceBroke(Exception):
    pass


async def test_source_error_propagates_as_itself() -> None:
    async def failing() -> AsyncGenerator[bytes, None]:
        yield bytes(3 * MIN_CHUNK_SIZE)
        raise SourceBroke("connection reset")

    with pytest.raises(SourceBroke, match="connection reset"):
        await chunk_into_store(failing(), MemoryBlobStore(), SMALL)


class PutFailed(Exception):
    pass


class FailingStore(MemoryBlobStore):
    def __init__(self, fail_on_put: int) -> None:
        super().__init__()
        self.puts = 0
        self.fail_on_put = fail_on_put

    async def put(self, mh: bytes, data: bytes) -> None:
        self.puts += 1
        if self.puts == self.fail_on_put:
            raise PutFailed(f"put {self.puts}")
        await super().put(mh, data)


@pytest.mark.parametrize("fail_on_put", [1, 3])
async def test_store_error_propagates_as_itself(fail_on_put: int) -> None:
    body = random.Random(0).randbytes(5 * MIN_CHUNK_SIZE)
    async with aclosing(pieces_of(body, range(0, len(body), 1000))) as source:
        with pytest.raises(PutFailed, match=f"put {fail_on_put}"):
            await chunk_into_store(source, FailingStore(fail_on_put), SMALL)


class SlowCountingStore(MemoryBlobStore):
    """A store whose puts take a while, recording how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.peak = 0

    async def put(self, mh: bytes, data: bytes) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await trio.sleep(0.01)
            await super().put(mh, data)
        finally:
            self.active -= 1


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_puts_in_flight_never_exceed_the_limit(
    limit: int, autojump_clock: trio.testing.MockClock
) -> None:
    store = SlowCountingStore()
    body = random.Random(limit).randbytes(12 * MIN_CHUNK_SIZE)
    config = ChunkerConfig(chunk_size_bytes=MIN_CHUNK_SIZE, max_puts_in_flight=limit)
    result = await chunk_into_store(pieces_of(body), store, config)
    assert store.peak == limit  # reached (the puts do overlap) but never exceeded
    assert stored_bytes(store, result) == body


async def test_a_stalled_store_stops_the_reader(autojump_clock: trio.testing.MockClock) -> None:
    """Backpressure: with every put stuck, the chunker stops pulling from the source after
    the puts in flight, the chunk waiting for a put slot, the one in the channel and the
    one the reader is trying to send."""
    limit = 2
    release = trio.Event()
    pieces_read = 0

    class StuckStore(MemoryBlobStore):
        async def put(self, mh: bytes, data: bytes) -> None:
            await release.wait()

    async def endless() -> AsyncGenerator[bytes, None]:
        nonlocal pieces_read
        chunk = bytes(MIN_CHUNK_SIZE)
        while True:
            pieces_read += 1
            yield chunk

    config = ChunkerConfig(chunk_size_bytes=MIN_CHUNK_SIZE, max_puts_in_flight=limit)
    with trio.move_on_after(60):
        async with aclosing(endless()) as source:
            await chunk_into_store(source, StuckStore(), config)
    assert limit < pieces_read <= limit + 3


@pytest.mark.parametrize(
    "size", [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, -1], ids=["zero", "below", "above", "neg"]
)
def test_chunk_sizes_outside_16k_to_16m_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        ChunkerConfig(chunk_size_bytes=size)


def test_chunk_sizes_at_the_bounds_are_accepted() -> None:
    assert ChunkerConfig(chunk_size_bytes=16 << 10).chunk_size_bytes == 16384
    assert ChunkerConfig(chunk_size_bytes=16 << 20).chunk_size_bytes == 16 * 1024 * 1024


def test_zero_puts_in_flight_is_refused() -> None:
    with pytest.raises(ValueError, match="in flight"):
        ChunkerConfig(max_puts_in_flight=0)


# -- memory ------------------------------------------------------------------------------


class DiscardingStore(MemoryBlobStore):
    async def put(self, mh: bytes, data: bytes) -> None:
        await trio.lowlevel.checkpoint()


async def test_peak_memory_is_a_few_chunks_not_the_body() -> None:
    """256 MiB through 1 MiB chunks: about 1.5 s here, tracemalloc peak about 5.3 chunks."""
    chunk_size = 1 << 20
    body_size = 256 << 20
    config = ChunkerConfig(chunk_size_bytes=chunk_size)
    piece = random.Random(7).randbytes(300_007)  # odd size: chunks straddle pieces

    async def generated() -> AsyncGenerator[bytes, None]:
        sent = 0
        while sent < body_size:
            part = piece[: body_size - sent] if body_size - sent < len(piece) else piece
            sent += len(part)
            yield part

    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = await chunk_into_store(generated(), DiscardingStore(), config)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == body_size
    assert peak < chunk_size * (config.max_puts_in_flight + 4), (peak, elapsed)


@pytest.mark.parametrize("hint", [0, 1, 10_000, 40_000, 16 << 10, 10 << 20])
async def test_a_wrong_or_right_size_hint_never_changes_the_chunks(hint: int) -> None:
    data = os.urandom(40_000)
    cuts = range(3000, len(data), 3000)
    config = ChunkerConfig(chunk_size_bytes=16 << 10)
    store = MemoryBlobStore()
    hinted = await chunk_into_store(pieces_of(data, cuts), store, config, expected_size=hint)
    plain = await chunk_into_store(pieces_of(data, cuts), MemoryBlobStore(), config)
    assert hinted.leaves == plain.leaves
    assert b"".join(store.blobs[leaf.cid.multihash] for leaf in hinted.leaves) == data
