"""The in-memory blob store, for tests and for `relay cid`-style dry runs."""

from __future__ import annotations

import trio

from relay.ipld import multihash
from relay.store.base import BlobNotFound, CorruptBlob, StoreStatistics


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}
        self._written = 0
        self._bytes = 0
        self._deduplicated = 0
        self._syncs = 0
        self._reads = 0

    async def put(self, mh: bytes, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if mh in self.blobs:
            self._deduplicated += 1
            return
        self.blobs[mh] = bytes(data)
        self._written += 1
        self._bytes += len(data)

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        await trio.lowlevel.checkpoint()
        self._reads += 1
        try:
            blob = self.blobs[mh]
        except KeyError:
            raise BlobNotFound(mh) from None
        return check_read(mh, blob, offset, length, expect)

    async def has(self, mh: bytes) -> bool:
        await trio.lowlevel.checkpoint()
        return mh in self.blobs

    async def delete(self, mh: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.blobs.pop(mh, None)

    async def sync(self) -> None:
        await trio.lowlevel.checkpoint()
        self._syncs += 1

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            self._written, self._bytes, self._deduplicated, self._syncs, self._reads
        )

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def check_read(
    mh: bytes, blob: bytes, offset: int, length: int | None, expect: bytes | None
) -> bytes:
    """Slice ``blob`` and verify what is returned, as the ``BlobStore`` contract demands.

    Shared by backends that hold the whole blob in hand when they answer.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("negative offset or length")
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
