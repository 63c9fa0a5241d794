"""The blob store contract: content-addressed, atomic, idempotent, verified.

A blob is named by the multihash of its bytes (``bytes``, see ``relay.ipld.multihash``).
Every backend (memory, disk, an S3 bucket, a piri node) implements ``BlobStore``:

- ``put(mh, data)``: store ``data`` under ``mh``. The caller guarantees ``mh`` is the
  multihash of ``data`` (the chunker computed it); putting bytes already present is a
  no-op. A put that returned is *readable* but not necessarily *durable*. ``data`` may be
  a read-only view of a buffer the caller reuses once the put returns: a backend that
  keeps the bytes beyond the call copies them.
- ``sync()``: every put that returned before ``sync()`` was called is durable when it
  returns. Durability is paid once per commit batch, not once per blob: the bucket writer
  calls ``sync()`` once before it commits a root, and a multipart part once before its
  registry row is written. Nothing durable may name a blob that is not (a crash would
  leave a row or a root pointing at nothing). Concurrent calls should share the work,
  and a sync with nothing new to make durable should cost next to nothing.
- ``get(mh, offset=0, length=None, *, expect=None)``: read a blob or a byte range of it.
  Nothing unverified is ever returned: a whole-blob read is checked against ``mh``; a
  partial range must name the multihash of the block it holds (``expect``, e.g. an MST
  node inside a commit CAR) and is checked against that. A mismatch raises
  ``CorruptBlob``; a missing blob raises ``BlobNotFound``.
- ``get_many(reads)``: several such reads at once, each checked the same way, answered in
  order. Listing a page needs a thousand small blocks from a few CARs; a backend batches
  them where it can (the disk store reads them all in one worker-thread hop).
- ``has(mh)``, ``delete(mh)`` (deleting an absent blob is a no-op). ``has`` answers what
  the store believes, as cheaply as it can (the disk store: its index), not a check.
  A put that begins after a ``delete`` of the same blob began stores the bytes again.
- ``list_blobs()``: every blob the store holds durably, each once, with its size and when
  the store last stored it (``StoredBlob``; an age of 0 means "unknown, treat as old").
  Garbage collection sweeps from this list (``relay.bucket.gc``).
- ``delete(mh, stored_before_ms=T)``, garbage collection's delete: only if the store has
  not stored the blob since ``T``, and returns whether it deleted. A store that several
  processes share counts a put deduplicated against the blob as storing it (the disk
  store dates the index row anew, the s3 store uploads an old object again), so another
  process's write that re-uses an old unreachable blob is as safe as one that writes new
  bytes: a collection that listed the blob as old does not delete it once that put
  returned (the disk store decides atomically in its index; the s3 store HEADs the object
  first). The memory store, one process's, leaves that to the collector's own record of
  its writes in flight (``relay.bucket.inflight``). See git's "freshen" of objects it
  would have written, for the same race between a writer and ``git gc``.
- ``reclaim_space()``: give back the space deleted blobs still occupy (the disk store
  compacts its packs; a store where a delete frees the space at once does nothing), once
  after a sweep.
- ``aclose()``: release files and connections.

A torn write (a crash mid-put) must never be read back as valid: a backend either makes
the write atomic or relies on the verification above to refuse it.

Self-healing. Storage loses and damages bytes behind the store's back (a pack file
truncated or deleted, a bit flipped on disk, an upstream object removed by a lifecycle
rule or an operator). Two rules keep that from being trusted forever:

- A put is deduplicated only against bytes the store has just checked it still holds
  (each backend's check is in its module docstring: the disk store reads the indexed
  record's header and last byte, the s3 store HEADs the object, the piri store asks piri
  with ``blob/allocate``, the memory store re-hashes).
  A check that fails makes the put store the bytes again. So a put that returned always
  means the bytes are held, as far as the check can see.
- A read that finds the store's own copy missing or corrupt *forgets* it before raising
  ``BlobNotFound`` / ``CorruptBlob``: the store itself does this, inside ``get`` and
  ``get_many``, so no caller can forget to. Forgetting drops what made the store believe
  it held the blob (the disk store's index row, durably; the upstream stores' known-
  present entry), never bytes; the next put of the same bytes then stores them again and
  heals every object that names them. Only a proven fault of the stored copy forgets: a
  partial range that does not match ``expect`` forgets the blob only if the whole blob
  then fails its own multihash (the caller may simply have asked for the wrong block),
  and a range past the end of the blob forgets nothing.

What a put's check cannot see (a byte flipped inside the data: the disk store's header
check and the s3 store's HEAD see a missing, truncated or resized blob, not a flip) the
next read sees, and forgets; the put after that read stores the bytes again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from relay.ipld.cid import blob_key


class StoreError(Exception):
    """Base of the blob store's own errors (converted to S3 errors by the front door)."""


class BlobNotFound(StoreError):
    def __init__(self, mh: bytes) -> None:
        super().__init__(f"blob {blob_key(mh)} not found")
        self.multihash = mh


class CorruptBlob(StoreError):
    def __init__(self, mh: bytes, detail: str = "bytes do not match the multihash") -> None:
        super().__init__(f"blob {blob_key(mh)}: {detail}")
        self.multihash = mh


class StoreUnavailable(StoreError):
    """The upstream could not be reached, or kept failing (connection errors, timeouts,
    5xx), for every attempt the store makes. Transient by nature: the S3 front door
    answers 503, so clients retry."""


class StoreFull(StoreError):
    """The store's filesystem has no room (ENOSPC, or the quota's EDQUOT) for a write.
    Nothing of the write is visible, and the store stays usable: the write can be retried
    once space is freed (the S3 front door answers 507 InsufficientStorage)."""


class StoreRefused(StoreError):
    """The storage node refused the request for a reason the operator must fix (piri: a
    missing or wrong delegation). ``summary`` names the cause and no secret; the S3 front
    door answers 503 with it rather than hiding it behind InternalError."""

    def __init__(self, summary: str, detail: str) -> None:
        super().__init__(detail)
        self.summary = summary


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters since the store opened. A store may decide whether a put writes or
    deduplicates as late as the next ``sync`` (the disk store does for small blobs), so
    the put counters are exact after a sync, and may lag before it."""

    blobs_written: int
    bytes_written: int
    blobs_deduplicated: int
    syncs: int
    reads: int
    # Blobs a read found missing or damaged and forgot (see "Self-healing" above).
    blobs_forgotten: int = 0


# True in the task that commits roots (the bucket writer): its puts and syncs may spend
# the space a store keeps in reserve, so that deletes still commit on a full disk while
# new data is refused (see ``relay.store.disk``, "A full disk").
_COMMITTING: ContextVar[bool] = ContextVar("relay_store_committing", default=False)


def committing() -> bool:
    """Whether the current task writes commits (may spend the store's reserve)."""
    return _COMMITTING.get()


def mark_commit_writer() -> None:
    """Mark the current task (and the tasks it starts from now on) as the one that writes
    commits. trio gives each task its own copy of the context, so this marks no other."""
    _COMMITTING.set(True)


@contextmanager
def writing_commits() -> Iterator[None]:
    """Mark the current task (and the tasks it starts from now on) as the one that
    writes commits: a delete's commit must get space when data may not."""
    token = _COMMITTING.set(True)
    try:
        yield
    finally:
        _COMMITTING.reset(token)


@dataclass(frozen=True, slots=True)
class BlobRead:
    """One read for ``get_many``: the same arguments as ``get``."""

    blob: bytes
    offset: int = 0
    length: int | None = None
    expect: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One blob a store holds, as ``list_blobs`` reports it."""

    multihash: bytes
    size: int
    # When the store last stored it, a deduplicated put included where several processes
    # share the store (ms since the epoch; 0: unknown, old).
    stored_at_ms: int


@dataclass(frozen=True, slots=True)
class ReclaimReport:
    """What ``reclaim_space`` gave back."""

    bytes_freed: int
    packs_rewritten: int
    packs_deleted: int


NOTHING_RECLAIMED = ReclaimReport(0, 0, 0)


@runtime_checkable
class BlobStore(Protocol):
    async def put(self, mh: bytes, data: bytes) -> None: ...

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes: ...

    async def get_many(self, reads: Sequence[BlobRead]) -> list[bytes]: ...

    async def has(self, mh: bytes) -> bool: ...

    async def delete(self, mh: bytes, *, stored_before_ms: int | None = None) -> bool: ...

    def list_blobs(self) -> AsyncIterator[StoredBlob]: ...

    async def reclaim_space(self) -> ReclaimReport: ...

    async def sync(self) -> None: ...

    def statistics(self) -> StoreStatistics: ...

    async def aclose(self) -> None: ...
