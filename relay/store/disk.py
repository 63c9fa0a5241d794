"""The disk blob store (relay's default): append-only packs, a SQLite index, group fsync.

Theory of operation
-------------------
Layout under the store root::

    LOCK                   flock'ed shared by every process that has the store open
    index.sqlite (+ -wal)  multihash → (pack, record offset, data length, first stored);
                           WAL, synchronous=FULL
    packs/00000001.pack    append-only records: header (magic, lengths, multihash) + data
    RESERVE                space held back for commits on a full disk (see "A full disk")
    COMPACT.lock           flock'ed by the one compactor at work (``relay.store.compact``)

(the record format is in ``relay.store.packs``).

Several processes. Any number of processes may open one store at once (``relay serve
--workers N``, and ``relay ls`` or ``export`` beside a running server); each takes the
``LOCK`` file shared, so a tool that needs the store to itself can still take it
exclusively and be told it is in use. Each process appends only to pack files it created
itself: a pack is created with ``O_EXCL``, and a number another process took is skipped,
so two processes never write one pack. The index is one SQLite file in WAL mode: every
process reads all of it, and writes wait for each other (``BEGIN IMMEDIATE`` behind a busy
timeout) instead of failing. What one process holds in memory (staged and pending blobs)
the others cannot see, and need not: a blob is read by another process only after a
commit or a part row named it, and both come after the ``sync`` that indexed it. A read
that misses in this process's maps asks the index, so it finds what any process synced.
Two processes putting the same new blob may both write it; the index keeps the first
row, and the other record is garbage like any duplicate.

Writes. ``put`` first deduplicates against what this process holds (a blob staged,
pending or being written by a concurrent put costs no write). A small blob (at most
``STAGED_BLOB_MAX_BYTES``) is then only *staged*: copied into memory, readable at once,
and written by the next ``sync``. A thread hop costs more than writing 4 KiB, and
``aws s3 sync`` of small files is one small put per object; staging lets one hop per
group commit write them all. Staged bytes are bounded (``STAGED_TOTAL_MAX_BYTES``); past
that, and for larger blobs, ``put`` writes through: in one worker thread hop it checks the
index, reserves a byte range at the end of the active pack (under a lock, so ranges never
overlap), writes the whole record there with ``pwritev``, and returns its location. The
location goes into the in-memory *pending* map: the blob is readable at once, from the
page cache, but not yet durable. Packs rotate at ``pack_size_limit_bytes``.

Staged blobs are checked against the index when the sync writes them, so whether a staged
put wrote or deduplicated is only known then: ``statistics`` counts it at that sync.

Durability ordering. ``sync`` (0) writes the staged blobs the index lacks; (1)
fdatasyncs each pack written since the last sync, once per pack, not once per blob, and
the packs directory if a pack was created; then (2) commits the pending locations to the
index in ONE SQLite transaction (which fsyncs the WAL); then (3) drops them from the
pending map. A location is thus only ever indexed
after the bytes it points at are on stable storage. Syncs are serialized by a lock; a
sync that waits for another still commits everything pending when it was called, so
"every put that returned before ``sync()`` was called is durable when it returns" holds.
Concurrent syncs naturally group: the later ones find little or nothing left to do.

Why a torn write never reads back as valid. A crash can leave, at the tail of a pack, a
record that is partly written, or that was written but never fsynced. No index row points
at such a record (rows are written only after the fsync), so after a restart it does not
exist: the unsynced puts are forgotten, which the contract allows, since nothing acked
depends on them. A restarted store never appends after that tail either: it creates a NEW
pack (numbered above every pack on disk and every pack the index has seen). And should
the disk still lie — a truncated, missing or overwritten pack — every read checks the
record header against the index entry, then hashes what it returns (the whole blob against
its multihash, a range against ``expect``): a mismatch is ``CorruptBlob``, never bytes.

Healing (see ``relay.store.base``). The index says which blobs the store holds; a pack
can still lose a tail, a byte or the whole file behind the store's back. So a put never
deduplicates against the index alone: it checks the indexed record first (for a small
staged blob, the sync does when it finds the blob indexed) with two small preads: the
record header (the pack exists, the record is the one the index means, the data length
agrees) and the record's last data byte (the pack is not truncated inside it). An intact
record deduplicates; a damaged one has its index row forgotten and the bytes are written
again. What this check cannot see is a byte flipped inside the data: the next read sees
it (every read hashes what it returns) and forgets the blob, so the put after that read
stores it again. Re-hashing the record on every dedupe would see the flip too, but it
costs about twice the write it saves: per 1 MiB put, measured on a busy 2-core VM
(``python -m bench.bench_dedupe_check``), a write plus its share of the sync took 1.2-1.8
ms (0.5-0.65 ms CPU), the header check 0.16-0.6 ms (0.13-0.33 ms CPU), re-reading and
hashing the record 2.1-4.3 ms (1.4-1.7 ms CPU). Blobs put by this process
and not yet synced (staged, pending) deduplicate without a check: their bytes are in
memory or were written moments ago.

A read whose checks fail (a missing pack, a short pack, a header that is not the
expected one, bytes that do not hash to the multihash) re-reads the whole record; if it
is damaged the store forgets the blob before raising: the index row is deleted durably
(only if it still points at that record), or a pending entry is dropped so the next sync
does not index it. The damaged record itself stays as garbage (below).

Garbage. Unsynced records, deleted blobs, damaged records and duplicate records (rare: a
blob deleted or found damaged and put again) stay in their packs as unreferenced bytes.
``delete`` only removes the index entry, durably, before it returns; ``reclaim_space``
gives the space back: it compacts every sealed pack whose live bytes fell below
``compact_live_fraction`` of its size (``relay.store.compact``: copy the live records to a
new pack, re-point the index, delete the old pack; crash-safe and online). A read that
finds its record's pack gone looks the blob up again and reads it where compaction moved
it before it concludes anything. ``list_blobs`` walks the index (with each blob's age)
for garbage collection.

A full disk. A write that finds no room (ENOSPC, EDQUOT, or SQLite unable to grow the
index) raises ``StoreFull`` and leaves nothing visible: a record cut short is never
indexed, an index transaction that fails rolls back, and the sync that met it puts its
batch back, so the same sync can be retried once there is room. (Only a failed fdatasync
still makes the store refuse every later sync: after one the kernel may have dropped the
dirty pages, so a retry could report durable bytes that are not; tmpfs, ext4 and XFS
report a full disk when the bytes are written, not at fdatasync.) The store then stays
*full*: it refuses new data at once, without writing, and keeps ``RESERVE`` (a file of
``reserve_bytes``, made at open) for commits: the task that writes commits (the bucket
writer, marked with ``relay.store.base.writing_commits``) may spend it, so deletes still
commit on a full disk (the first such commit deletes the file: its space serves the commit
CARs and the registry's and the index's WAL). The store leaves the full state, and makes a
new ``RESERVE``, as soon as a refused put finds the reserve plus as much again free
(``statvfs``), for instance after garbage collection deleted blobs and ``reclaim_space``
compacted their packs: writes succeed again without a restart.

Threads. All file and SQLite I/O, and the hashing of what is read from packs, runs in
worker threads behind one ``CapacityLimiter(max_io_threads)``; the trio thread only touches
the in-memory maps, and hashes a staged blob it returns (at most 64 KiB, ~40 µs).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import trio

from relay.ipld import multihash
from relay.store.base import (
    BlobNotFound,
    BlobRead,
    CorruptBlob,
    ReclaimReport,
    StoredBlob,
    StoreError,
    StoreFull,
    StoreStatistics,
    committing,
)
from relay.store.compact import (
    DEFAULT_LIVE_FRACTION,
    CompactionReport,
    compact,
    compactor_lock,
    file_bytes,
    sum_reports,
)
from relay.store.memory import check_read
from relay.store.packs import (
    Location,
    PackIndex,
    PackReader,
    PackWriter,
    existing_pack_numbers,
    fsync_directory,
    is_out_of_space,
    pack_name,
)
from relay.store.shared import SingleFlight, StoreCounters, check_range_arguments

# Puts of blobs at most this large are staged in memory until the next sync (see above).
STAGED_BLOB_MAX_BYTES = 64 << 10
# Staged bytes held at most: a group commit's worth of small objects (2,000 x 4 KiB).
STAGED_TOTAL_MAX_BYTES = 8 << 20

# A blob read in several places by one get_many is read whole if it is at most this large.
WHOLE_READ_LIMIT_BYTES = 4 << 20

# A pack this large holds ~1000 default (1 MiB) chunks: few enough files to keep open,
# small enough that a future compaction can rewrite one at a time.
DEFAULT_PACK_SIZE_LIMIT_BYTES = 1 << 30
# Enough parallel reads to keep an SSD's queue busy and hash on every core; writes to
# the page cache do not scale beyond a few, and the limiter also bounds the bytes of
# blobs held by worker threads (max_io_threads x blob size).
DEFAULT_MAX_IO_THREADS = 16
# Read descriptors kept open (one per pack): 64 x 1 GiB packs covers 64 GiB hot data.
DEFAULT_MAX_OPEN_PACKS = 64
# Space held back for commits on a full disk. A delete's commit CAR is a few hundred bytes
# per key and the registry's transaction a few pages: 16 MiB commits tens of thousands of
# deletes, and is little next to the disk a store lives on.
DEFAULT_RESERVE_BYTES = 16 << 20
# Blobs per index page that ``list_blobs`` reads at a time.
LIST_PAGE_BLOBS = 1000
FULL_MESSAGE = "the disk holding the blob store is full"

Args = TypeVarTuple("Args")
Result = TypeVar("Result")

INDEX_NAME = "index.sqlite"
PACKS_DIRECTORY = "packs"
LOCK_NAME = "LOCK"
RESERVE_NAME = "RESERVE"


@dataclass(frozen=True, slots=True)
class DiskStoreStatistics:
    """What the disk store adds to ``StoreStatistics``: the cost of durability."""

    pending_blobs: int  # put but not yet durable: staged or written, not yet indexed
    file_syncs: int
    index_commits: int
    packs_created: int
    active_pack: int | None
    full: bool  # new data is refused until space is freed (see "A full disk")
    reserve_held: bool
    packs_rewritten: int  # by compaction, since the store opened
    packs_deleted: int
    bytes_reclaimed: int


class DiskBlobStore:
    """A ``BlobStore`` on a local directory. Open it with ``open_disk_store``."""

    def __init__(
        self,
        root: Path,
        index: PackIndex,
        writer: PackWriter,
        reader: PackReader,
        lock_fd: int,
        max_io_threads: int,
        *,
        pack_size_limit_bytes: int = DEFAULT_PACK_SIZE_LIMIT_BYTES,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        compact_live_fraction: float = DEFAULT_LIVE_FRACTION,
    ) -> None:
        self.root = root
        self._pack_size_limit = pack_size_limit_bytes
        self._reserve_bytes = reserve_bytes
        self._compact_live_fraction = compact_live_fraction
        self._compaction_lock = trio.Lock()
        self._recovery_lock = trio.Lock()
        self._reserve_held = False
        self._full = False
        self._compacted = CompactionReport(0, 0, 0, 0, 0, 0)
        self._index = index
        self._writer = writer
        self._reader = reader
        self._lock_fd = lock_fd
        self._limiter = trio.CapacityLimiter(max_io_threads)
        self._commit_lock = trio.Lock()
        # Written (complete) but not yet indexed; read from here first.
        self._pending: dict[bytes, Location] = {}
        # The same entries in put order, for the next sync (minus those deleted since).
        self._unsynced: list[tuple[bytes, Location]] = []
        # Small blobs put since the last sync, not written yet (see "Writes").
        self._staged: dict[bytes, bytes] = {}
        self._staged_bytes = 0
        # Those the sync in progress is writing: still readable from here until it ends.
        self._flushing: dict[bytes, bytes] = {}
        # Puts being written right now: a second put of the same blob shares the first.
        self._puts = SingleFlight()
        self._sync_failure: BaseException | None = None
        self._threads_admitted = 0
        self._all_threads_done: trio.Event | None = None
        self._closed = False
        self._counters = StoreCounters()
        self._file_syncs = 0
        self._index_commits = 0

    async def put(self, mh: bytes, data: bytes) -> None:
        self._check_open()
        if mh in self._pending or self._unwritten(mh) is not None:
            await trio.lowlevel.checkpoint()
            self._counters.deduplicated += 1
            return
        if self._full:
            if committing():
                await self._spend_reserve()
            elif not await self._room_again():
                raise StoreFull(FULL_MESSAGE)
        size = len(data)
        if (
            size <= STAGED_BLOB_MAX_BYTES
            and self._staged_bytes + size <= STAGED_TOTAL_MAX_BYTES
            and mh not in self._puts
        ):
            self._staged[mh] = bytes(data)  # the caller may reuse its buffer
            self._staged_bytes += size
            await trio.lowlevel.checkpoint()
            return

        async def write() -> bool:
            try:
                location = await self._in_thread(self._write_if_absent, mh, data)
            except Exception as exc:
                if not is_out_of_space(exc):
                    raise
                self._full = True
                if not (committing() and self._reserve_held):
                    raise StoreFull(FULL_MESSAGE) from exc
                await self._spend_reserve()
                try:
                    location = await self._in_thread(self._write_if_absent, mh, data)
                except Exception as again:
                    if is_out_of_space(again):
                        raise StoreFull(FULL_MESSAGE) from again
                    raise
            if location is None:
                return False
            # From here on nothing awaits: the blob is pending and queued for the next
            # sync in the same step in which the put completes.
            self._pending[mh] = location
            self._unsynced.append((mh, location))
            self._counters.stored(len(data))
            return True

        if not await self._puts.run(mh, write):
            self._counters.deduplicated += 1

    def _unwritten(self, mh: bytes) -> bytes | None:
        """The bytes of ``mh`` if it is staged, or being written by the sync under way."""
        data = self._staged.get(mh)
        return self._flushing.get(mh) if data is None else data

    def _write_if_absent(self, mh: bytes, data: bytes) -> Location | None:
        location = self._index.lookup(mh)
        if location is not None:
            if self._holds([(mh, location)])[0]:
                if self._index.freshen([(mh, location)])[0]:
                    return None
                # Deleted since the lookup (another process's collection): write it again.
            else:
                self._index.remove_at([(mh, location)])  # forget the damaged record
        return self._writer.append(mh, data)

    def _holds(self, located: Sequence[tuple[bytes, Location]]) -> list[bool]:
        """The put path's check of indexed records (see "Healing"): is each record's pack
        there, its header the expected one, and its last byte on disk? Two small preads."""
        answers = []
        with self._reader.batch() as read_record:
            for mh, location in located:
                last = max(location.length - 1, 0)
                try:
                    read_record(mh, location, last, location.length, cached=True)
                except CorruptBlob:
                    answers.append(False)
                else:
                    answers.append(True)
        return answers

    def _intact(self, mh: bytes, location: Location) -> bool:
        """The read path's confirmation: the whole record, hashed."""
        with self._reader.batch() as read_record:
            try:
                data = read_record(mh, location, 0, location.length)
            except CorruptBlob:
                return False
        return multihash.matches(mh, data)

    def _held_many(self, mhs: Iterable[bytes]) -> dict[bytes, Location]:
        """The indexed blobs among ``mhs`` whose records are intact, their rows freshened
        (a put deduplicated against them); the damaged ones' rows are forgotten, so the
        caller writes them again, as it does those deleted before they were freshened."""
        indexed = list(self._index.lookup_many(mhs).items())
        if not indexed:
            return {}
        intact = self._holds(indexed)
        damaged = [entry for entry, ok in zip(indexed, intact, strict=True) if not ok]
        if damaged:
            self._index.remove_at(damaged)
        held = [entry for entry, ok in zip(indexed, intact, strict=True) if ok]
        fresh = self._index.freshen(held)
        return {mh: location for (mh, location), ok in zip(held, fresh, strict=True) if ok}

    async def _forget_if_damaged(self, mh: bytes) -> None:
        """A read of ``mh`` failed its checks: if its record is damaged, forget it."""
        pending = self._pending.get(mh)
        try:
            with trio.CancelScope(shield=True):  # the read's error is raised either way
                forgotten = await self._in_thread(self._forget_blocking, mh, pending)
        except (StoreError, OSError, sqlite3.Error):
            # Closing, or the disk failing worse: the read's own error is what the caller
            # hears, and the next read that meets the damage tries to forget it again.
            return
        if forgotten is not None:
            self._counters.forgotten += 1
            if self._pending.get(mh) is forgotten:
                del self._pending[mh]  # the next sync skips it, and a put writes it again

    def _forget_blocking(self, mh: bytes, pending: Location | None) -> Location | None:
        location = pending or self._index.lookup(mh)
        if location is None or self._intact(mh, location):
            return None  # nothing held, or the record is intact (the read asked amiss)
        if pending is None:
            self._index.remove_at([(mh, location)])
        return location

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        return (await self.get_many([BlobRead(mh, offset, length, expect)]))[0]

    def _read_verified(
        self,
        mh: bytes,
        location: Location,
        offset: int,
        length: int | None,
        expect: bytes | None,
        read: Callable[[bytes, Location, int, int], bytes],
    ) -> bytes:
        # Same checks, in the same order, as ``relay.store.memory.check_read``; only the
        # bytes it needs are read (a block inside a large CAR costs one small pread).
        size = location.length
        end = size if length is None else offset + length
        if end > size:
            raise CorruptBlob(mh, f"range {offset}+{length} beyond the blob's {size} bytes")
        if offset == 0 and end == size:
            data = read(mh, location, 0, size)
            if not multihash.matches(mh, data):
                raise CorruptBlob(mh)
            return data
        if expect is None:
            raise ValueError("a partial read must name the multihash of the block it holds")
        part = read(mh, location, offset, end)
        if not multihash.matches(expect, part):
            raise CorruptBlob(
                mh, f"range {offset}+{length} does not match the block it should hold"
            )
        return part

    async def get_many(self, reads: Sequence[BlobRead]) -> list[bytes]:
        for read in reads:
            check_range_arguments(read.offset, read.length)
        self._check_open()
        self._counters.reads += len(reads)
        if not reads:
            await trio.lowlevel.checkpoint()
            return []
        results: list[bytes] = []
        from_packs: list[tuple[int, BlobRead, Location | None]] = []
        for read in reads:
            held = self._unwritten(read.blob)
            if held is None:
                from_packs.append((len(results), read, self._pending.get(read.blob)))
                results.append(b"")
            else:
                results.append(check_read(read.blob, held, read.offset, read.length, read.expect))
        if not from_packs:
            await trio.lowlevel.checkpoint()
            return results
        try:
            read_back = await self._in_thread(
                self._read_many_verified, [(read, location) for _, read, location in from_packs]
            )
        except CorruptBlob as exc:
            await self._forget_if_damaged(exc.multihash)
            raise
        for (position, _, _), data in zip(from_packs, read_back, strict=True):
            results[position] = data
        return results

    def _read_many_verified(self, located: list[tuple[BlobRead, Location | None]]) -> list[bytes]:
        # Many reads name the same blob (a page's manifests sit in a few commit CARs), or
        # many blobs in few packs: the index answers for all of them in one query, each
        # pack is borrowed once, and a small blob read in several places is read whole,
        # once, and sliced. Every slice is still checked against its own block.
        partial_reads = Counter(read.blob for read, _ in located if read.offset or read.length)
        found = self._index.lookup_many({read.blob for read, loc in located if loc is None})
        whole: dict[bytes, bytes] = {}
        results = []
        with self._reader.batch() as read_record:
            for read, pending in located:
                mh = read.blob
                location = pending or found.get(mh)
                if location is None:
                    raise BlobNotFound(mh)
                try:
                    if partial_reads[mh] > 1 and location.length <= WHOLE_READ_LIMIT_BYTES:
                        blob = whole.get(mh)
                        if blob is None:
                            # A CAR: its other blocks are read again soon (the next page).
                            blob = whole[mh] = read_record(
                                mh, location, 0, location.length, cached=True
                            )
                        results.append(check_read(mh, blob, read.offset, read.length, read.expect))
                    else:
                        results.append(
                            self._read_verified(
                                mh, location, read.offset, read.length, read.expect, read_record
                            )
                        )
                except CorruptBlob:
                    if pending is not None:
                        raise
                    # Compaction may have moved the record (and deleted its pack) since
                    # the lookup: read it where the index says it is now, once.
                    moved = self._index.lookup(mh)
                    if moved is None:
                        raise BlobNotFound(mh) from None
                    if moved == location:
                        raise
                    found[mh] = moved
                    results.append(
                        self._read_verified(
                            mh, moved, read.offset, read.length, read.expect, read_record
                        )
                    )
        return results

    async def has(self, mh: bytes) -> bool:
        self._check_open()
        if mh in self._pending or self._unwritten(mh) is not None:
            await trio.lowlevel.checkpoint()
            return True
        location = await self._in_thread(self._index.lookup, mh)
        return location is not None

    async def delete(self, mh: bytes, *, stored_before_ms: int | None = None) -> bool:
        """Forget ``mh`` durably; its bytes stay in the pack until ``reclaim_space``
        compacts it. On a full disk a delete may spend the reserve (deletes are how space
        comes back); ``StoreFull`` only if even that leaves no room.

        A put of the same blob that races with its delete may win or lose; a caller that
        deletes (garbage collection) must not delete what it is still writing. With
        ``stored_before_ms``, a blob this process is writing, or that any process stored
        or freshened since then (``PackIndex.freshen``), is kept: decided in the index
        transaction that deletes.
        """
        self._check_open()
        if stored_before_ms is not None:
            if mh in self._pending or mh in self._staged or mh in self._flushing:
                await trio.lowlevel.checkpoint()
                return False
            async with self._commit_lock:
                return await self._remove_with_room(
                    lambda: self._index.remove_if_stored_before(mh, stored_before_ms)
                )
        self._pending.pop(mh, None)  # a sync skips entries no longer pending
        staged = self._staged.pop(mh, None)
        if staged is not None:
            self._staged_bytes -= len(staged)
        # Under the commit lock: a sync that already took this blob into its batch commits
        # first, and this delete then removes the row it wrote.
        async with self._commit_lock:
            await self._remove_with_room(lambda: self._index.remove([mh]))
        return True

    async def _remove_with_room(self, remove: Callable[[], Result]) -> Result:
        """Run an index delete (under the commit lock). A delete is how space comes back:
        on a full disk it may spend the reserve (the index needs room in its WAL to
        forget a row)."""
        if self._full:
            await self._spend_reserve()
        try:
            result = await self._in_thread(remove)
        except Exception as exc:
            if not is_out_of_space(exc):
                raise
            self._full = True
            if not self._reserve_held:
                raise StoreFull(FULL_MESSAGE) from exc
            await self._spend_reserve()
            result = await self._in_thread(remove)
        self._index_commits += 1
        return result

    async def sync(self) -> None:
        self._check_open()
        async with self._commit_lock:
            if self._sync_failure is not None:
                # After a failed fsync the kernel may have dropped the dirty pages: retrying
                # could "succeed" and index bytes that are not on disk. Refuse instead.
                raise StoreError("an earlier sync failed; reopen the store") from (
                    self._sync_failure
                )
            if self._full and committing():
                await self._spend_reserve()
            batch = [(mh, loc) for mh, loc in self._unsynced if self._pending.get(mh) is loc]
            # Entries deleted or forgotten since their put are dropped for good.
            self._writer.settle(
                loc for mh, loc in self._unsynced if self._pending.get(mh) is not loc
            )
            self._unsynced = []
            staged, self._staged, self._staged_bytes = self._staged, {}, 0
            if batch or staged:
                self._flushing = staged
                try:
                    written, file_syncs = await self._make_durable_with_room(batch, staged)
                except (trio.Cancelled, _OutOfSpace) as exc:
                    # Cancelled only before the thread started; out of space before anything
                    # became durable or visible. Either way the sync can simply be retried.
                    self._unsynced[:0] = batch
                    self._staged = staged | self._staged
                    self._staged_bytes = sum(map(len, self._staged.values()))
                    if isinstance(exc, _OutOfSpace):
                        raise StoreFull(FULL_MESSAGE) from exc.__cause__
                    raise
                except BaseException as exc:
                    self._sync_failure = exc
                    raise
                finally:
                    self._flushing = {}
                for _, location in written:
                    self._counters.stored(location.length)
                self._counters.deduplicated += len(staged) - len(written)
                self._file_syncs += file_syncs
                self._index_commits += 1
                for mh, loc in batch:
                    if self._pending.get(mh) is loc:
                        del self._pending[mh]
            else:
                await trio.lowlevel.checkpoint()
            self._counters.syncs += 1

    async def _make_durable_with_room(
        self, batch: list[tuple[bytes, Location]], staged: dict[bytes, bytes]
    ) -> tuple[list[tuple[bytes, Location]], int]:
        try:
            return await self._in_thread(self._make_durable, batch, staged)
        except _OutOfSpace:
            self._full = True
            if not (committing() and self._reserve_held):
                raise
        await self._spend_reserve()  # the commit may have it: that is what it is for
        return await self._in_thread(self._make_durable, batch, staged)

    def _make_durable(
        self, batch: list[tuple[bytes, Location]], staged: dict[bytes, bytes]
    ) -> tuple[list[tuple[bytes, Location]], int]:
        """Write the staged blobs, fdatasync, index. Out of space while writing or
        indexing raises ``_OutOfSpace`` with nothing visible (the staged blobs' records
        written so far are abandoned as garbage; the caller stages them again)."""
        written: list[tuple[bytes, Location]] = []
        try:
            if staged:
                indexed = self._held_many(staged)
                for mh, data in staged.items():
                    if mh not in indexed:
                        written.append((mh, self._writer.append(mh, data)))
        except Exception as exc:
            self._writer.settle(location for _, location in written)
            if is_out_of_space(exc):
                raise _OutOfSpace from exc
            raise
        # A failed fdatasync is not retried (see "A full disk"): it propagates as itself.
        file_syncs = self._writer.sync()  # the bytes first ...
        try:
            self._index.add(batch + written)  # ... then the rows that point at them
        except Exception as exc:
            if is_out_of_space(exc):  # rolled back; the batch's records are durable
                self._writer.settle(location for _, location in written)
                raise _OutOfSpace from exc
            raise
        self._writer.settle(location for _, location in batch + written)
        return written, file_syncs

    # -- a full disk -----------------------------------------------------------------

    async def take_reserve(self) -> None:
        """At open: find ``RESERVE`` or make it; where it does not fit, start full."""
        self._reserve_held, self._full = await self._in_thread(self._take_reserve_blocking)

    def _take_reserve_blocking(self) -> tuple[bool, bool]:
        if self._reserve_bytes == 0:
            return False, False
        if _reserve_present(self.root, self._reserve_bytes):
            return True, False
        try:
            _make_reserve(self.root, self._reserve_bytes)
        except OSError as exc:
            if is_out_of_space(exc):
                return False, True
            raise
        return True, False

    async def _spend_reserve(self) -> None:
        if self._reserve_held:
            self._reserve_held = False
            await self._in_thread(_release_reserve, self.root)
        else:
            await trio.lowlevel.checkpoint()

    async def _room_again(self) -> bool:
        """Whether the store takes new data (see ``_recover_space``); one check at a time."""
        async with self._recovery_lock:
            if not self._full:
                await trio.lowlevel.checkpoint()
                return True
            return await self._in_thread(self._recover_space)

    def _recover_space(self) -> bool:
        """Leave the full state if the reserve, and as much again, fits (making the
        reserve anew): True if the store takes new data again."""
        if not self._full:
            return True
        stats = os.statvfs(self.root)
        free = stats.f_bavail * stats.f_frsize
        wanted = self._reserve_bytes * (1 if self._reserve_held else 2) + (1 << 20)
        if free < wanted:
            return False
        if not self._reserve_held and self._reserve_bytes:
            try:
                _make_reserve(self.root, self._reserve_bytes)
            except OSError as exc:
                if is_out_of_space(exc):
                    return False
                raise
        self._reserve_held = bool(self._reserve_bytes)
        self._full = False
        return True

    # -- garbage: ages, compaction -----------------------------------------------------

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob the index holds (durably), in multihash order, with its size and
        when the store first held it. Blobs put meanwhile may or may not appear."""
        after = b""
        while True:
            page = await self._in_thread(self._index.page, after, LIST_PAGE_BLOBS)
            for entry in page:
                yield StoredBlob(entry.mh, entry.location.length, entry.stored_at_ms)
            if len(page) < LIST_PAGE_BLOBS:
                return
            after = page[-1].mh

    async def reclaim_space(self) -> ReclaimReport:
        """Compact the packs that deleted blobs left mostly garbage (``relay.store.compact``)
        and give their space back. On a full disk the compaction may spend the reserve;
        if it still runs out of room it stops, reports what it freed, and the store stays
        full."""
        self._check_open()
        async with self._compaction_lock:
            if await self._in_thread(self._active_pack_is_garbage):
                self._writer.seal_active()
            # The sealed pack's last records are indexed ... (on a full disk that may fail:
            # compacting the packs already sealed is how room comes back, so go on).
            with contextlib.suppress(StoreFull):
                await self.sync()
            self._writer.close_idle()  # ... so it closes, and becomes a candidate
            report = await self._in_thread(self._compact_blocking)
            if report is None:  # another process is compacting this store
                return ReclaimReport(0, 0, 0)
            if report[1] and self._reserve_held:  # out of space: spend the reserve, go on
                self._full = True
                await self._spend_reserve()
                again = await self._in_thread(self._compact_blocking)
                if again is not None:
                    report = (sum_reports(report[0], again[0]), again[1])
            compacted, stopped_for_space = report
            if stopped_for_space:
                self._full = True
            self._compacted = sum_reports(self._compacted, compacted)
            await self._room_again()
        return ReclaimReport(
            compacted.bytes_freed, compacted.packs_rewritten, compacted.packs_deleted
        )

    def _active_pack_is_garbage(self) -> bool:
        active = self._writer.active_pack
        if active is None:
            return False
        usage = self._index.pack_usage().get(active)
        live = 0 if usage is None else usage.live_bytes
        size = file_bytes(self.root / PACKS_DIRECTORY / pack_name(active))
        return size > 0 and live < self._compact_live_fraction * size

    def _compact_blocking(self) -> tuple[CompactionReport, bool] | None:
        with compactor_lock(self.root) as acquired:
            if not acquired:
                return None
            return compact(
                self.root / PACKS_DIRECTORY,
                self._index,
                self._reader,
                open_packs=self._writer.open_packs,
                pack_size_limit_bytes=self._pack_size_limit,
                live_fraction=self._compact_live_fraction,
            )

    def statistics(self) -> StoreStatistics:
        return self._counters.snapshot()

    def disk_statistics(self) -> DiskStoreStatistics:
        return DiskStoreStatistics(
            pending_blobs=len(self._pending) + len(self._staged) + len(self._flushing),
            file_syncs=self._file_syncs,
            index_commits=self._index_commits,
            packs_created=self._writer.packs_created,
            active_pack=self._writer.active_pack,
            full=self._full,
            reserve_held=self._reserve_held,
            packs_rewritten=self._compacted.packs_rewritten,
            packs_deleted=self._compacted.packs_deleted,
            bytes_reclaimed=self._compacted.bytes_freed,
        )

    async def aclose(self) -> None:
        """Release files and connections. Does NOT sync: unsynced puts are forgotten.

        Operations already admitted finish first (their threads hold descriptors); any
        call made after ``aclose`` began raises ``StoreError``.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            if self._threads_admitted:
                self._all_threads_done = trio.Event()
                await self._all_threads_done.wait()
            await trio.to_thread.run_sync(self._close_blocking)

    async def _in_thread(self, function: Callable[[*Args], Result], *args: *Args) -> Result:
        """Run blocking work in a worker thread behind the limiter; ``aclose`` waits for it."""
        self._check_open()
        self._threads_admitted += 1
        try:
            return await trio.to_thread.run_sync(function, *args, limiter=self._limiter)
        finally:
            self._threads_admitted -= 1
            if self._threads_admitted == 0 and self._all_threads_done is not None:
                self._all_threads_done.set()

    def _close_blocking(self) -> None:
        try:
            self._writer.close()
            self._reader.close()
            self._index.close()
        finally:
            os.close(self._lock_fd)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the disk store at {self.root} is closed")


class _OutOfSpace(Exception):
    """Inside the store: a sync ran out of room before anything became visible."""


def _make_reserve(root: Path, size: int) -> None:
    """Hold ``size`` bytes of the filesystem in ``RESERVE``, durably: made aside, then
    renamed into place, so a crash never leaves a short reserve under the real name."""
    aside = root / f".{RESERVE_NAME}.new"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.pwrite(fd, bytes(size), 0)  # a filesystem without fallocate: real zeros
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        aside.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(aside, root / RESERVE_NAME)
    fsync_directory(root)


def _release_reserve(root: Path) -> None:
    (root / RESERVE_NAME).unlink(missing_ok=True)
    fsync_directory(root)


def _reserve_present(root: Path, size: int) -> bool:
    try:
        return os.stat(root / RESERVE_NAME).st_size >= size
    except FileNotFoundError:
        return False


@asynccontextmanager
async def open_disk_store(
    directory: Path,
    *,
    pack_size_limit_bytes: int = DEFAULT_PACK_SIZE_LIMIT_BYTES,
    max_io_threads: int = DEFAULT_MAX_IO_THREADS,
    max_open_packs: int = DEFAULT_MAX_OPEN_PACKS,
    reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    compact_live_fraction: float = DEFAULT_LIVE_FRACTION,
) -> AsyncIterator[DiskBlobStore]:
    """Open (creating if needed) the disk store at ``directory``; close it on exit.

    ``reserve_bytes`` is held back for commits on a full disk (0: none); packs whose live
    bytes fall below ``compact_live_fraction`` of their size are compacted by
    ``reclaim_space``.
    """
    if pack_size_limit_bytes <= 0 or max_io_threads < 1 or max_open_packs < 1:
        raise ValueError("limits must be positive")
    if reserve_bytes < 0 or not 0 < compact_live_fraction <= 1:
        raise ValueError("reserve_bytes must be >= 0 and compact_live_fraction in (0, 1]")
    store = await trio.to_thread.run_sync(
        functools.partial(
            _open_blocking,
            Path(directory),
            pack_size_limit_bytes,
            max_io_threads,
            max_open_packs,
            reserve_bytes=reserve_bytes,
            compact_live_fraction=compact_live_fraction,
        )
    )
    try:
        await store.take_reserve()
    except BaseException:
        await store.aclose()
        raise
    try:
        yield store
    finally:
        await store.aclose()


def _open_blocking(
    root: Path,
    pack_size_limit_bytes: int,
    max_io_threads: int,
    max_open_packs: int,
    *,
    reserve_bytes: int,
    compact_live_fraction: float,
) -> DiskBlobStore:
    packs = root / PACKS_DIRECTORY
    created = not packs.is_dir()
    packs.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            # Shared: other relay processes may have it open too (see "Several processes").
            fcntl.flock(lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise StoreError(
                    f"the disk store at {root} is open in another process that holds it alone"
                ) from exc
            raise
        index = PackIndex(root / INDEX_NAME)
        try:
            if created:
                fsync_directory(root)
            # A pack number is never reused, even if its file went missing.
            highest = max([index.highest_pack(), *existing_pack_numbers(packs)])
            writer = PackWriter(packs, highest + 1, pack_size_limit_bytes)
            reader = PackReader(packs, max_open_packs)
        except BaseException:
            index.close()
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(lock_fd)
        raise
    return DiskBlobStore(
        root,
        index,
        writer,
        reader,
        lock_fd,
        max_io_threads,
        pack_size_limit_bytes=pack_size_limit_bytes,
        reserve_bytes=reserve_bytes,
        compact_live_fraction=compact_live_fraction,
    )
