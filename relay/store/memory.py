"""The in-memory blob store, for tests and for `relay cid`-style dry runs.

Self-healing (see ``relay.store.base``): a put is deduplicated only if the held bytes
still hash to the multihash (tests damage ``blobs`` directly to stand for a disk that
lies); a read that finds them damaged drops them, so the next put stores them again.
``stored_at_ms`` says when each blob was first held (tests age blobs by editing it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import trio

from relay.ipld import multihash
from relay.store.base import (
    NOTHING_RECLAIMED,
    BlobNotFound,
    BlobRead,
    CorruptBlob,
    ReclaimReport,
    StoredBlob,
    StoreStatistics,
)
from relay.store.shared import StoreCounters, check_range_arguments, get_each


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}
        self.stored_at_ms: dict[bytes, int] = {}
        self._counters = StoreCounters()

    async def put(self, mh: bytes, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        held = self.blobs.get(mh)
        if held is not None and multihash.matches(mh, held):
            self._counters.deduplicated += 1
            return
        self.blobs[mh] = bytes(data)
        self.stored_at_ms.setdefault(mh, time.time_ns() // 1_000_000)
        self._counters.stored(len(data))

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        await trio.lowlevel.checkpoint()
        self._counters.reads += 1
        try:
            blob = self.blobs[mh]
        except KeyError:
            raise BlobNotFound(mh) from None
        try:
            return check_read(mh, blob, offset, length, expect)
        except CorruptBlob:
            if not multihash.matches(mh, blob):
                del self.blobs[mh]  # forget: the next put stores the bytes again
                self._counters.forgotten += 1
            raise

    async def get_many(self, reads: Sequence[BlobRead]) -> list[bytes]:
        return await get_each(self.get, reads)

    async def has(self, mh: bytes) -> bool:
        await trio.lowlevel.checkpoint()
        return mh in self.blobs

    async def delete(self, mh: bytes, *, stored_before_ms: int | None = None) -> bool:
        # Decided and gone before the checkpoint: a put that begins after this call stores
        # it again.
        if stored_before_ms is not None and self.stored_at_ms.get(mh, 0) > stored_before_ms:
            await trio.lowlevel.checkpoint()
            return False
        held = self.blobs.pop(mh, None) is not None
        self.stored_at_ms.pop(mh, None)
        await trio.lowlevel.checkpoint()
        return held

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        for mh in list(self.blobs):
            await trio.lowlevel.checkpoint()
            blob = self.blobs.get(mh)
            if blob is not None:
                yield StoredBlob(mh, len(blob), self.stored_at_ms.get(mh, 0))

    async def reclaim_space(self) -> ReclaimReport:
        """Nothing to do: a deleted blob's memory is freed with it."""
        await trio.lowlevel.checkpoint()
        return NOTHING_RECLAIMED

    async def sync(self) -> None:
        await trio.lowlevel.checkpoint()
        self._counters.syncs += 1

    def statistics(self) -> StoreStatistics:
        return self._counters.snapshot()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def check_read(
    mh: bytes, blob: bytes, offset: int, length: int | None, expect: bytes | None
) -> bytes:
    """Slice ``blob`` and verify what is returned, as the ``BlobStore`` contract demands.

    Shared by backends that hold the whole blob in hand when they answer.
    """
    check_range_arguments(offset, length)
    end = len(blob) if length is None else offset + length
    if end > len(blob):
        raise CorruptBlob(mh, f"range {offset}+{length} beyond the blob's {len(blob)} bytes")
    if offset == 0 and end == len(blob):
        if not multihash.matches(mh, blob):
            raise CorruptBlob(mh)
        return blob
    if expect is None:
        raise ValueError("a partial read must name the multihash of the block it holds")
    part = blob[offset:end]
    if not multihash.matches(expect, part):
        raise CorruptBlob(mh, f"range {offset}+{length} does not match the block it should hold")
    return part
