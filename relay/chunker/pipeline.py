"""The fixed-size chunk relay: an async byte stream in, content-addressed chunks out.

Theory of operation. A body arrives as pieces of any size. The reader copies them into a
chunk-sized buffer taken from the server's pool (``relay.chunker.buffers``); when it is
full, the buffer itself (no copy) goes over a channel of one slot to the hashing stage,
and the reader takes the next buffer (before it reads on, so that an upload waiting for
the pool leaves its bytes in the kernel) and goes back to the socket. The hashing
stage runs the whole-body digests (MD5 for the ETag, BLAKE3 for ``x-cid``, any requested
checksum of ``relay.chunker.checksums``) and the chunk's own sha2-256 in worker threads —
MD5, the slowest, on one thread while the others run on a second, so two cores overlap
them; hashlib, blake3, awscrt and xxhash release the GIL on large buffers — then starts
the chunk's blob put (on a read-only view of the buffer; a store copies what it keeps)
and goes back for the next chunk. The buffer returns to the pool when its put is done.
At most ``max_puts_in_flight`` puts run at once; the hashing stage waits for a free slot
before it starts another, which stalls the channel, which stalls the reader, which stops
reading the socket: backpressure all the way to TCP. The pool adds the same backpressure
across uploads.

One upload holds at most ``max_puts_in_flight + 3`` buffers: the one being filled, the
one in the channel, the one being hashed, and those being stored. It does not depend on
the body's size; all uploads together hold at most the pool's capacity. The chunk being
filled lives in a ``ChunkLease``: while the reader waits on a slow client, the pool may
move the partial chunk to a right-sized private copy (still within the pool's byte
budget) and lend the buffer to an upload that is moving, or, when such copies crowd the
budget, end the upload with ``SlowUpload`` (see ``relay.chunker.buffers``). Peak memory
for all uploads: ``upload_memory_bytes`` of chunks, pooled or spilled, plus what stores
copy, plus one piece of the source per upload (the HTTP layer's read, 64 KiB).

A body of at most one chunk becomes one leaf (an empty body the leaf of ``b""``), so its
UnixFS root is that raw leaf, as in IPFS. If anything fails (the source, a hash, a put)
the nursery cancels the rest and the error propagates: blobs already stored are orphans
that nothing references, and nothing is committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import blake3
import trio

from relay.chunker.buffers import ChunkBuffers, ChunkLease
from relay.chunker.checksums import Checksum, new_hasher
from relay.errorgroups import single_error
from relay.ipld.cid import CID
from relay.ipld.multihash import wrap_sha2_256
from relay.store.base import BlobStore

MIN_CHUNK_SIZE: Final = 16 << 10
MAX_CHUNK_SIZE: Final = 16 << 20
DEFAULT_CHUNK_SIZE: Final = 1 << 20
# Four puts in flight keep a disk or a nearby upstream busy while the next chunk hashes,
# and bound the memory to a few chunks per upload.
DEFAULT_MAX_PUTS_IN_FLIGHT: Final = 4
# 12 chunk buffers: more than the two hashing threads can keep busy (one upload at full
# speed uses up to seven), and what keeps fifty concurrent part uploads (s5cmd, ten files
# at once) inside a ~100 MiB process: 94 MiB measured, against 98 with 16 buffers.
DEFAULT_UPLOAD_MEMORY_BYTES: Final = 12 << 20
# A body announced at most this large gets a buffer of its own size instead of a pooled
# chunk: many small objects in flight cost little, and they never wait for the pool.
_PRIVATE_BUFFER_LIMIT: Final = 64 << 10
# Below this, handing a chunk to a worker thread costs more than hashing it in place.
_THREAD_HASH_THRESHOLD: Final = 64 << 10


class BodyTooLarge(Exception):
    """The body grew past the limit the caller set (S3: EntityTooLarge)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Leaf:
    """One stored chunk: a raw block, named by a CIDv1 (raw, sha2-256)."""

    cid: CID
    size: int


@dataclass(frozen=True, slots=True)
class ChunkedBody:
    leaves: tuple[Leaf, ...]
    size: int
    md5: bytes
    blake3: bytes | None  # None when the caller did not ask for it (a multipart part)
    checksums: dict[Checksum, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    chunk_size_bytes: int = DEFAULT_CHUNK_SIZE
    max_puts_in_flight: int = DEFAULT_MAX_PUTS_IN_FLIGHT
    # The server-wide budget for chunks in flight (see relay.chunker.buffers).
    upload_memory_bytes: int = DEFAULT_UPLOAD_MEMORY_BYTES

    @property
    def pooled_buffers(self) -> int:
        return max(1, self.upload_memory_bytes // self.chunk_size_bytes)

    def __post_init__(self) -> None:
        if not MIN_CHUNK_SIZE <= self.chunk_size_bytes <= MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"
            )
        if self.max_puts_in_flight < 1:
            raise ValueError("at least one put must be allowed in flight")


class BodyHasher:
    """The whole-body digests, fed chunk by chunk, in order."""

    def __init__(
        self, checksums: frozenset[Checksum] = frozenset(), *, whole_blake3: bool = True
    ) -> None:
        self._md5 = hashlib.md5()
        self._blake3 = blake3.blake3() if whole_blake3 else None
        self._extra = {kind: new_hasher(kind) for kind in checksums}

    def _update_all_but_md5(self, chunk: bytes) -> bytes:
        if self._blake3 is not None:
            self._blake3.update(chunk)
        for hasher in self._extra.values():
            hasher.update(chunk)
        return hashlib.sha256(chunk).digest()

    def update_nowait(self, chunk: bytes) -> bytes:
        """Feed a chunk on this thread; return the chunk's sha2-256 digest."""
        self._md5.update(chunk)
        return self._update_all_but_md5(chunk)

    async def update(self, chunk: bytes) -> bytes:
        """Feed a chunk, MD5 on one worker thread and the rest on another."""
        if len(chunk) < _THREAD_HASH_THRESHOLD:
            return self.update_nowait(chunk)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, self._md5.update, chunk)
            digest = await trio.to_thread.run_sync(self._update_all_but_md5, chunk)
        return digest

    def md5(self) -> bytes:
        return self._md5.digest()

    def blake3(self) -> bytes | None:
        return None if self._blake3 is None else self._blake3.digest()

    def checksums(self) -> dict[Checksum, bytes]:
        return {kind: hasher.digest() for kind, hasher in self._extra.items()}


async def chunk_into_store(
    source: AsyncIterable[bytes],
    store: BlobStore,
    config: ChunkerConfig = ChunkerConfig(),
    *,
    checksums: frozenset[Checksum] = frozenset(),
    max_body_bytes: int | None = None,
    expected_size: int | None = None,
    buffers: ChunkBuffers | None = None,
    whole_blake3: bool = True,
) -> ChunkedBody:
    """Stream ``source`` into ``store`` as fixed-size raw chunks; see the module docstring.

    ``whole_blake3=False`` leaves out the body's BLAKE3 (``blake3`` is None): a multipart
    part's is of no use, as Complete hashes the whole object in order.

    ``buffers`` is the server's pool (the memory budget shared by every upload); without
    it each chunk gets a buffer of its own. ``expected_size`` (a Content-Length) sizes a
    private buffer for a small body: a 4 KiB object should neither cost a zeroed 1 MiB
    allocation nor wait for a pooled one. A wrong hint is harmless: the body moves to a
    full-size buffer when more bytes arrive.
    """
    chunk_size = config.chunk_size_bytes
    small_limit = min(chunk_size, _PRIVATE_BUFFER_LIMIT)
    if expected_size is not None and expected_size <= small_limit:
        # A small body (most of a sync) skips the pipeline's tasks and channel: read it
        # whole, hash it here, put it. Longer than announced, it carries on below.
        pieces, rest = await _read_at_most(source, small_limit)
        body = b"".join(pieces)
        if max_body_bytes is not None and len(body) > max_body_bytes:
            raise BodyTooLarge(max_body_bytes)
        if rest is None:
            return await _store_small_body(
                body, store, BodyHasher(checksums, whole_blake3=whole_blake3)
            )
        source = _chained(pieces, rest)
    pool = buffers if buffers is not None and buffers.chunk_size == chunk_size else None
    hasher = BodyHasher(checksums, whole_blake3=whole_blake3)
    leaves: list[Leaf] = []
    put_slots = trio.Semaphore(config.max_puts_in_flight)
    send_chunk, receive_chunk = trio.open_memory_channel[tuple[bytearray, int]](1)
    # The chunk being filled lives in a lease, which the pool may spill or evict while the
    # upload waits on its client (relay.chunker.buffers). Full pooled chunks this upload
    # handed on, by identity: whatever is still here when the upload ends (it failed or
    # was cancelled mid-way) goes back to the pool.
    lease = ChunkLease(pool)
    held: dict[int, bytearray] = {}

    def give_back(buffer: bytearray) -> None:
        if held.pop(id(buffer), None) is not None:
            assert pool is not None
            pool.release(buffer)

    async def put_chunk(mh: bytes, chunk: memoryview, buffer: bytearray) -> None:
        try:
            await store.put(mh, chunk)  # type: ignore[arg-type]  # a read-only bytes-like
        finally:
            chunk.release()
            give_back(buffer)
            put_slots.release()

    async def hash_and_store(nursery: trio.Nursery) -> None:
        async with receive_chunk:
            async for buffer, filled in receive_chunk:
                chunk = memoryview(buffer)[:filled].toreadonly()
                try:
                    digest = await hasher.update(chunk)  # type: ignore[arg-type]
                    leaves.append(Leaf(CID.raw_sha256(digest), filled))
                    await put_slots.acquire()
                except BaseException:
                    chunk.release()
                    raise
                nursery.start_soon(put_chunk, wrap_sha2_256(digest), chunk, buffer)

    async def hand_on() -> None:
        filled = lease.filled
        buffer, pooled = lease.hand_off()
        if pooled:
            held[id(buffer)] = buffer
        await send_chunk.send((buffer, filled))

    body_pieces = aiter(source)
    size = 0
    try:
        with single_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(hash_and_store, nursery)
                async with send_chunk:
                    first_size = chunk_size
                    if expected_size is not None and expected_size <= _PRIVATE_BUFFER_LIMIT:
                        first_size = max(1, min(chunk_size, expected_size))
                    while True:
                        if pool is not None and lease.buffer is None and first_size == chunk_size:
                            # Reserve the next chunk's buffer before reading from the
                            # client, so that an upload waiting for the pool leaves its
                            # bytes in the kernel instead of holding a read in memory. A
                            # reserved buffer the client is slow to fill is lent back.
                            if expected_size is None or size < expected_size:
                                await lease.take(chunk_size)
                        piece = await lease.receive(body_pieces)
                        if piece is None:
                            break
                        size += len(piece)
                        if max_body_bytes is not None and size > max_body_bytes:
                            raise BodyTooLarge(max_body_bytes)
                        taken = 0
                        while taken < len(piece):
                            if lease.buffer is None:
                                await lease.take(first_size)
                                first_size = chunk_size
                            elif lease.filled == len(lease.buffer):  # a short hint, or spilled
                                await lease.take(chunk_size)
                            buffer, filled = lease.buffer, lease.filled
                            assert buffer is not None
                            n = min(len(buffer) - filled, len(piece) - taken)
                            buffer[filled : filled + n] = piece[taken : taken + n]
                            lease.filled = filled + n
                            taken += n
                            if lease.filled == chunk_size:
                                await hand_on()
                    if lease.filled:
                        await hand_on()
                    elif size == 0:
                        await send_chunk.send((bytearray(), 0))
    finally:
        lease.close()
        for buffer in list(held.values()):
            give_back(buffer)

    return ChunkedBody(tuple(leaves), size, hasher.md5(), hasher.blake3(), hasher.checksums())


async def _read_at_most(
    source: AsyncIterable[bytes], limit: int
) -> tuple[list[bytes], AsyncIterator[bytes] | None]:
    """The pieces of ``source`` up to ``limit`` bytes, and the iterator if more follow."""
    iterator = aiter(source)
    pieces: list[bytes] = []
    size = 0
    async for piece in iterator:
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            return pieces, iterator
    return pieces, None


async def _chained(pieces: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
    async for piece in rest:
        yield piece


async def _store_small_body(body: bytes, store: BlobStore, hasher: BodyHasher) -> ChunkedBody:
    digest = hasher.update_nowait(body)
    await store.put(wrap_sha2_256(digest), body)
    leaf = Leaf(CID.raw_sha256(digest), len(body))
    return ChunkedBody((leaf,), len(body), hasher.md5(), hasher.blake3(), hasher.checksums())
