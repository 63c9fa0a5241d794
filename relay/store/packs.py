"""Pack files and their index: the blocking half of the disk store (no trio here).

Everything in this module blocks (file and SQLite I/O) and is thread-safe, so that
``relay.store.disk`` can call it from its worker threads; it never imports trio.

A *pack* is an append-only file ``packs/NNNNNNNN.pack`` holding records back to back.
A record is a fixed header, the multihash, then the blob's bytes::

    magic        4 bytes   b"RLB1"
    mh_length    2 bytes   big-endian
    data_length  8 bytes   big-endian
    multihash    mh_length bytes
    data         data_length bytes

The record carries its own multihash so that a read can check that the index pointed at
the record it meant (a stale or wrong offset fails the header check before any bytes are
hashed) and so that a future compaction can rebuild or verify the index from the packs.

Large records are written with ``O_DIRECT`` where the filesystem allows it: such a record
starts on a 4 KiB boundary and is padded to one (readers never see the padding: the index
says where each record starts). On a virtual machine the buffered path cost ~2.7 CPU-s
per GiB copying into the page cache (``copy_folio_from_iter``); a direct write costs
~0.1 and one copy into an aligned staging buffer. Small records stay buffered: padding
them would waste more than it saves. ``sync`` is the same either way (``fdatasync``).

Large reads are direct too, for the same reason the other way: a buffered read of a
record that is not in the page cache (and a record written direct never is) cost 0.8-1.5
CPU-s per GiB here, a direct read into an aligned buffer plus one copy out ~0.27. The read
covers the 4 KiB-aligned span around the bytes wanted; O_DIRECT does not care how the
bytes were written (the kernel writes back any dirty cached pages in the span first), so
the reader needs no record of which records went direct. The cost: a large blob read
twice comes from the device twice. So only chunk reads go direct (a download, Complete's
one read-back: rarely the same chunk again soon); a caller that will read a blob again
says ``cached=True`` (the disk store does for commit and index CARs, whose blocks a
listing reads page after page), and small records and the index stay in the page cache.

The *index* (``index.sqlite``, WAL, ``synchronous=FULL``) maps multihash → (pack, record
offset, data length, when the store first held it). Rows are only ever written after the
pack bytes they point at were fsynced, in one transaction per ``sync`` (see
``relay.store.disk`` for the ordering). Its schema is versioned (``PRAGMA user_version``):
version 2 added ``stored_at_ms``; an older index is upgraded at open, its rows dated to the
upgrade (the age garbage collection's grace period reads: a blob of unknown age counts as
new, never as old). Several processes share it: a write transaction waits up to
``INDEX_BUSY_TIMEOUT_SECONDS`` for another process's to finish instead of failing with
"database is locked".

A pack stays *open* in its writer (``PackWriter.open_packs``) until it is rotated away
from, synced, and every record appended to it has been indexed or dropped
(``PackWriter.settle``). Only a pack no writer holds open may be compacted
(``relay.store.compact``): records not yet indexed live only in open packs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import queue
import sqlite3
import struct
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from relay.store.base import CorruptBlob, StoreError

MAGIC = b"RLB1"
_HEADER = struct.Struct(">4sHQ")
# The multihash length is a u16 in the header; real multihashes are 34 bytes.
MAX_MULTIHASH_LENGTH = 0xFFFF
PACK_SUFFIX = ".pack"
# Records with at least this many data bytes are written with O_DIRECT when possible.
DIRECT_WRITE_MIN_BYTES = 128 << 10
# O_DIRECT needs the file offset, the length and the memory address aligned to the
# device's logical block size; 4 KiB covers every block size in use.
DIRECT_ALIGNMENT = 4096
# Aligned staging buffers for direct writes; a writer thread waits for a free one.
DIRECT_STAGING_BUFFERS = 2
# Reads of at least this many bytes bypass the page cache where the filesystem allows it.
DIRECT_READ_MIN_BYTES = 128 << 10
# Aligned buffers for direct reads; a reading thread waits for a free one. Four 1 MiB
# reads in flight keep this kind of device busy, and bound the memory they hold.
DIRECT_READ_BUFFERS = 4
# How long an index transaction waits for another process's (each is one small commit,
# milliseconds; a stalled disk can hold one for seconds). The registry waits as long.
INDEX_BUSY_TIMEOUT_SECONDS = 30.0


def is_out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the filesystem (or the user's quota) has no room left."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):  # SQLite could not grow its file or its WAL
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return False


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _align_up(value: int) -> int:
    return (value + DIRECT_ALIGNMENT - 1) & ~(DIRECT_ALIGNMENT - 1)


def _align_down(value: int) -> int:
    return value & ~(DIRECT_ALIGNMENT - 1)


class _AlignedBuffers:
    """At most ``limit`` page-aligned buffers (anonymous maps, as O_DIRECT needs) for
    direct I/O. A thread that finds none free waits for one rather than holding another
    chunk's memory. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._made = 0
        self._lock = threading.Lock()
        self._free: queue.Queue[mmap.mmap] = queue.Queue()

    def take(self, span: int) -> mmap.mmap:
        with self._lock:
            make = self._free.empty() and self._made < self._limit
            if make:
                self._made += 1
        if make:  # sized for a default chunk and its alignment, so it is rarely remade
            return mmap.mmap(-1, max(span, (1 << 20) + 2 * DIRECT_ALIGNMENT))
        buffer = self._free.get()
        if len(buffer) < span:
            buffer.close()
            buffer = mmap.mmap(-1, span)
        return buffer

    def give_back(self, buffer: mmap.mmap) -> None:
        self._free.put(buffer)

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()


@dataclass(frozen=True, slots=True)
class Location:
    """Where a blob's record starts, and how many data bytes follow its header."""

    pack: int
    offset: int
    length: int


def pack_name(number: int) -> str:
    return f"{number:08d}{PACK_SUFFIX}"


def header_length(mh: bytes) -> int:
    return _HEADER.size + len(mh)


def encode_header(mh: bytes, data_length: int) -> bytes:
    if len(mh) > MAX_MULTIHASH_LENGTH:
        raise ValueError(f"a multihash of {len(mh)} bytes does not fit a pack record")
    return _HEADER.pack(MAGIC, len(mh), data_length) + mh


def existing_pack_numbers(directory: Path) -> list[int]:
    numbers = []
    for entry in os.scandir(directory):
        stem, dot, suffix = entry.name.partition(".")
        if dot and "." + suffix == PACK_SUFFIX and stem.isdigit():
            numbers.append(int(stem))
    return sorted(numbers)


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (a newly created file's name) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _datasync(fd: int) -> None:
    # fdatasync flushes the data and the metadata needed to read it back (the file size),
    # skipping timestamps; where it does not exist, fsync does the same and a little more.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


Pread = Callable[[int, int], bytes]  # (length, offset) -> the bytes there, maybe fewer


class RecordReader(Protocol):
    """``read(mh, location, start, end)``: see ``PackReader.batch``."""

    def __call__(
        self, mh: bytes, location: Location, start: int, end: int, *, cached: bool = False
    ) -> bytes: ...


def _read_record(
    pread: Pread, direct: Pread | None, mh: bytes, location: Location, start: int, end: int
) -> bytes:
    header_size = header_length(mh)
    read = pread if direct is None or end - start < DIRECT_READ_MIN_BYTES else direct
    if start == 0:  # header and data in one read
        raw = read(header_size + end, location.offset)
        header, data = raw[:header_size], raw[header_size:]
    else:
        header = pread(header_size, location.offset)
        data = b""
        if end > start:
            data = read(end - start, location.offset + header_size + start)
    if header != encode_header(mh, location.length):
        raise CorruptBlob(
            mh,
            f"no intact record header at {pack_name(location.pack)}:{location.offset}",
        )
    if len(data) != max(end - start, 0):
        raise CorruptBlob(mh, f"pack {pack_name(location.pack)} is truncated")
    return data


def _write_fully(fd: int, parts: list[bytes], offset: int) -> None:
    """``pwritev`` until every byte landed: a short write is legal, if rare, on files."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.pwritev(fd, views, offset)
        if written <= 0:  # pragma: no cover - the kernel reports errors as OSError
            raise OSError(f"pwritev wrote {written} bytes")
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _create_locked(directory: Path, path: Path) -> int | None:
    """Create the pack ``path`` already flock'ed by the returned descriptor, or None if
    it exists. The file is made under a private name, locked, then linked into place, so
    no compactor ever sees the pack unlocked while its writer holds it open."""
    aside = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.new"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.link(aside, path)
        except FileExistsError:
            os.close(fd)
            return None
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    finally:
        aside.unlink(missing_ok=True)
    return fd


class PackWriter:
    """Appends records to the active pack, rotates packs, and fsyncs what was written.

    Thread-safe. ``append`` reserves its byte range under a lock (so concurrent appends
    never overlap) and writes outside it, so many appends proceed in parallel. A pack is
    created lazily on the first append, and always as a NEW file: a writer never appends
    after bytes that an earlier process may have left torn. Every pack a writer holds
    open is ``flock``'ed (exclusively) through its descriptor, from before its name
    exists until the descriptor is closed: a compactor in any process skips a locked pack
    (its records may not be indexed yet), and a writer that dies releases the lock.
    """

    def __init__(
        self, directory: Path, first_pack: int, size_limit_bytes: int, *, direct: bool = True
    ) -> None:
        if size_limit_bytes <= 0:
            raise ValueError("the pack size limit must be positive")
        self._directory = directory
        self._size_limit = size_limit_bytes
        self._next_number = first_pack
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._active: int | None = None
        self._end = 0
        self._fds: dict[int, int] = {}
        self._direct_fds: dict[int, int] = {}  # packs whose filesystem took O_DIRECT
        self._direct = direct and hasattr(os, "O_DIRECT")
        self._staging = _AlignedBuffers(DIRECT_STAGING_BUFFERS)
        self._writes_in_flight: dict[int, int] = {}
        # Records appended to each pack and not yet indexed or dropped (see ``settle``).
        self._unindexed: Counter[int] = Counter()
        self._unsynced: set[int] = set()
        self._created_since_sync = False
        self._closed = False
        self.packs_created = 0
        self.direct_writes = 0

    @property
    def active_pack(self) -> int | None:
        return self._active

    def open_packs(self) -> set[int]:
        """The packs this writer may still append to or hold unindexed records in."""
        with self._lock:
            return set(self._fds)

    def seal_active(self) -> None:
        """Append the next record to a new pack, so that the active one is closed by the
        next ``close_idle`` that finds it idle and settled (and can then be compacted)."""
        with self._lock:
            self._active = None

    def settle(self, locations: Iterable[Location]) -> None:
        """The caller indexed, or dropped for good, the records appended at ``locations``:
        once a pack has none left unsettled, a sync may close it."""
        with self._lock:
            for location in locations:
                self._unindexed[location.pack] -= 1
                if self._unindexed[location.pack] <= 0:
                    del self._unindexed[location.pack]

    def append(self, mh: bytes, data: bytes) -> Location:
        header = encode_header(mh, len(data))
        size = len(header) + len(data)
        wants_direct = self._direct and len(data) >= DIRECT_WRITE_MIN_BYTES
        with self._lock:
            if self._closed:
                raise StoreError("the pack writer is closed")
            room = size + (2 * DIRECT_ALIGNMENT if wants_direct else 0)
            if self._active is None or (self._end > 0 and self._end + room > self._size_limit):
                self._rotate()
            assert self._active is not None
            pack = self._active
            direct_fd = self._direct_fds.get(pack) if wants_direct else None
            if direct_fd is not None:
                offset = _align_up(self._end)
                self._end = offset + _align_up(size)
            else:
                offset = self._end
                self._end += size
            fd = self._fds[pack]
            self._writes_in_flight[pack] += 1
        completed = False
        try:
            if direct_fd is None or not self._write_direct(direct_fd, header, data, offset):
                _write_fully(fd, [header, data], offset)
            completed = True
        finally:
            with self._lock:
                self._writes_in_flight[pack] -= 1
                if completed:
                    self._unsynced.add(pack)
                    self._unindexed[pack] += 1
        return Location(pack, offset, len(data))

    def _write_direct(self, fd: int, header: bytes, data: bytes, offset: int) -> bool:
        """Write the record through ``fd`` (O_DIRECT); False if the filesystem refused.

        The record is copied into an aligned staging buffer with zeroed padding. A refusal
        (EINVAL: this filesystem or file does not do direct I/O after all) turns direct
        writes off for this writer; the caller then writes the record buffered, in place.
        """
        size = len(header) + len(data)
        span = _align_up(size)
        buffer = self._staging.take(span)
        try:
            buffer[: len(header)] = header
            buffer[len(header) : size] = data
            buffer[size:span] = bytes(span - size)
            view = memoryview(buffer)
            try:
                written = 0
                while written < span:
                    count = os.pwrite(fd, view[written:span], offset + written)
                    if count <= 0 or count % DIRECT_ALIGNMENT:  # pragma: no cover
                        raise OSError(errno.EIO, f"O_DIRECT pwrite wrote {count} bytes")
                    written += count
            except OSError as exc:
                if exc.errno != errno.EINVAL or written:
                    raise
                self._direct = False
                return False
            finally:
                view.release()
        finally:
            self._staging.give_back(buffer)
        self.direct_writes += 1
        return True

    def _rotate(self) -> None:
        # Called with the lock held. The previous pack keeps its descriptor until a sync
        # has flushed it and no write to it is in flight (see ``sync``).
        while True:
            number = self._next_number
            self._next_number += 1
            path = self._directory / pack_name(number)
            if path.exists():
                continue
            fd = _create_locked(self._directory, path)
            if fd is not None:
                break
        self._fds[number] = fd
        if self._direct:
            try:
                self._direct_fds[number] = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError:  # tmpfs and some others refuse O_DIRECT: stay buffered
                self._direct = False
        self._writes_in_flight[number] = 0
        self._active = number
        self._end = 0
        self._created_since_sync = True
        self.packs_created += 1

    def sync(self) -> int:
        """Flush every pack written since the last sync; return how many fsyncs it took.

        Covers every ``append`` that returned before ``sync`` was called. Descriptors of
        rotated-away packs that are flushed, idle and settled are closed here (and by
        ``close_idle``).
        """
        with self._sync_lock:
            with self._lock:
                packs = sorted(self._unsynced)
                self._unsynced.clear()
                fds = [self._fds[number] for number in packs]
                created = self._created_since_sync
                self._created_since_sync = False
            for fd in fds:
                _datasync(fd)
            if created:
                fsync_directory(self._directory)
            self.close_idle()
            return len(fds) + created

    def close_idle(self) -> None:
        """Close the descriptors of rotated-away packs that are flushed, idle and settled:
        from then on the pack is sealed (no longer in ``open_packs``)."""
        with self._lock:
            idle = [
                number
                for number in self._fds
                if number != self._active
                and self._writes_in_flight[number] == 0
                and number not in self._unsynced
                and number not in self._unindexed
            ]
            for number in idle:
                os.close(self._fds.pop(number))
                direct_fd = self._direct_fds.pop(number, None)
                if direct_fd is not None:
                    os.close(direct_fd)
                del self._writes_in_flight[number]

    def close(self) -> None:
        """Close every descriptor; bytes not yet synced are left to the page cache."""
        with self._lock:
            self._closed = True
            for fd in [*self._fds.values(), *self._direct_fds.values()]:
                os.close(fd)
            self._fds.clear()
            self._direct_fds.clear()
            self._staging.close()
            self._writes_in_flight.clear()
            self._active = None


@dataclass(slots=True)
class _OpenPack:
    number: int
    fd: int
    direct_fd: int | None = None
    borrowers: int = 0
    evicted: bool = False

    def close(self) -> None:
        os.close(self.fd)
        if self.direct_fd is not None:
            os.close(self.direct_fd)


class PackReader:
    """Reads records through a bounded cache of read-only descriptors. Thread-safe.

    A descriptor evicted while another thread is reading through it is closed when that
    read ends, never under it (a closed descriptor number could be reused by another file).
    """

    def __init__(self, directory: Path, max_open_packs: int) -> None:
        if max_open_packs < 1:
            raise ValueError("at least one pack must be allowed open")
        self._directory = directory
        self._max_open = max_open_packs
        self._lock = threading.Lock()
        self._open: OrderedDict[int, _OpenPack] = OrderedDict()
        self._direct = hasattr(os, "O_DIRECT")
        self._buffers = _AlignedBuffers(DIRECT_READ_BUFFERS)
        self.direct_reads = 0

    @contextmanager
    def batch(self) -> Iterator[RecordReader]:
        """A reader of records: ``read(mh, location, start, end)`` checks the record header at
        ``location`` names ``mh`` and returns data[start:end]. Each pack is borrowed once
        for the whole batch. A large read goes direct unless ``cached`` (see the module
        docstring).

        The caller has checked ``0 <= start``, ``end <= location.length``; the bytes are
        NOT verified against a hash here (the caller does that, knowing what to expect).
        A missing or short pack, or a header that is not the expected one, is CorruptBlob.
        """
        borrowed: dict[int, tuple[Pread, Pread]] = {}  # pack -> its buffered, direct reads
        with contextlib.ExitStack() as stack:

            def readers_of(entry: _OpenPack) -> tuple[Pread, Pread]:
                def pread(length: int, offset: int) -> bytes:
                    return os.pread(entry.fd, length, offset)

                def direct(length: int, offset: int) -> bytes:
                    return self._read_direct(entry, pread, length, offset)

                return pread, direct

            def read(
                mh: bytes, location: Location, start: int, end: int, *, cached: bool = False
            ) -> bytes:
                readers = borrowed.get(location.pack)
                if readers is None:
                    try:
                        entry = stack.enter_context(self._borrow(location.pack))
                    except FileNotFoundError:
                        raise CorruptBlob(
                            mh, f"pack {pack_name(location.pack)} is missing"
                        ) from None
                    readers = borrowed[location.pack] = readers_of(entry)
                pread, direct = readers
                use_direct = direct if self._direct and not cached else None
                return _read_record(pread, use_direct, mh, location, start, end)

            yield read

    def _read_direct(self, entry: _OpenPack, pread: Pread, length: int, offset: int) -> bytes:
        """Read through an O_DIRECT descriptor: the aligned span around the bytes wanted,
        into a pooled page-aligned buffer, then one copy out. Falls back to ``pread``,
        for good, where the filesystem refuses direct I/O (tmpfs, some network mounts)."""
        fd = entry.direct_fd
        if fd is None:
            try:
                path = self._directory / pack_name(entry.number)
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError:
                self._direct = False
                return pread(length, offset)
            with self._lock:
                if entry.direct_fd is None:
                    entry.direct_fd = fd
                else:  # another thread opened one meanwhile
                    os.close(fd)
                    fd = entry.direct_fd
        span_start = _align_down(offset)
        span = _align_up(offset + length) - span_start
        buffer = self._buffers.take(span)
        try:
            try:
                got = os.preadv(fd, [memoryview(buffer)[:span]], span_start)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = False
                return pread(length, offset)
            self.direct_reads += 1
            skip = offset - span_start
            return buffer[skip : max(skip, min(got, skip + length))]
        finally:
            self._buffers.give_back(buffer)

    @contextmanager
    def _borrow(self, pack: int) -> Iterator[_OpenPack]:
        entry = self._acquire(pack)
        try:
            yield entry
        finally:
            with self._lock:
                entry.borrowers -= 1
                if entry.evicted and entry.borrowers == 0:
                    entry.close()

    def _acquire(self, pack: int) -> _OpenPack:
        with self._lock:
            entry = self._open.get(pack)
            if entry is not None:
                self._open.move_to_end(pack)
                entry.borrowers += 1
                return entry
        fd = os.open(self._directory / pack_name(pack), os.O_RDONLY | os.O_CLOEXEC)
        with self._lock:
            entry = self._open.get(pack)
            if entry is not None:  # another thread opened it meanwhile
                os.close(fd)
                self._open.move_to_end(pack)
            else:
                entry = self._open[pack] = _OpenPack(pack, fd)
                while len(self._open) > self._max_open:
                    _, oldest = self._open.popitem(last=False)
                    oldest.evicted = True
                    if oldest.borrowers == 0:
                        oldest.close()
            entry.borrowers += 1
            return entry

    def forget_pack(self, pack: int) -> None:
        """``pack`` was deleted: close its descriptor (once no read holds it), or its
        blocks stay allocated as long as the descriptor lives."""
        with self._lock:
            entry = self._open.pop(pack, None)
            if entry is not None:
                entry.evicted = True
                if entry.borrowers == 0:
                    entry.close()

    def close(self) -> None:
        with self._lock:
            for entry in self._open.values():
                entry.evicted = True
                if entry.borrowers == 0:
                    entry.close()
            self._open.clear()
            self._buffers.close()


# Version 1: blobs(mh, pack, offset, length), packs(number). Version 2: + stored_at_ms.
INDEX_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    mh BLOB PRIMARY KEY,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (number INTEGER PRIMARY KEY);
CREATE INDEX IF NOT EXISTS blobs_by_pack ON blobs (pack, offset);
"""


@dataclass(frozen=True, slots=True)
class IndexedBlob:
    mh: bytes
    location: Location
    stored_at_ms: int


@dataclass(frozen=True, slots=True)
class PackUsage:
    """What the index says lives in one pack: its records and their bytes (headers too)."""

    pack: int
    live_records: int
    live_bytes: int


class PackIndex:
    """multihash → Location in SQLite. Thread-safe.

    One writer connection (commits are serialized by the caller and by a lock here) and
    a pool of reader connections, so lookups from many worker threads run in parallel
    under WAL without waiting for a commit.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to ``INDEX_SCHEMA_VERSION``."""
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version == INDEX_SCHEMA_VERSION:
            return  # nothing to write: a store must open on a full disk
        with self._transaction():
            version = self._writer.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in self._writer.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "blobs" in tables and version < 2:
                columns = {row[1] for row in self._writer.execute("PRAGMA table_info(blobs)")}
                if "stored_at_ms" not in columns:
                    self._writer.execute(
                        "ALTER TABLE blobs ADD COLUMN stored_at_ms INTEGER NOT NULL DEFAULT 0"
                    )
                    # Unknown age counts as new: garbage collection's grace period runs
                    # from the upgrade, so nothing is swept for being old by mistake.
                    self._writer.execute("UPDATE blobs SET stored_at_ms = ?", (now_ms(),))
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._writer.execute(statement)
            self._writer.execute(f"PRAGMA user_version = {INDEX_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction on the writer connection (held under ``_write_lock``, or
        at open). Any failure, a COMMIT that found the disk full included (SQLite then
        leaves the transaction open), rolls it back, so the next one starts clean."""
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._writer.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit. Connections are handed between
        # worker threads, one user at a time, hence check_same_thread=False.
        return sqlite3.connect(
            self._path,
            isolation_level=None,
            check_same_thread=False,
            timeout=INDEX_BUSY_TIMEOUT_SECONDS,
        )

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._readers.get_nowait()
        except queue.Empty:
            connection = self._connect()
            connection.execute("PRAGMA query_only=1")
            with self._readers_lock:
                self._all_readers.append(connection)
        try:
            yield connection
        finally:
            self._readers.put(connection)

    def lookup(self, mh: bytes) -> Location | None:
        with self._reader() as connection:
            row = connection.execute(
                "SELECT pack, offset, length FROM blobs WHERE mh = ?", (mh,)
            ).fetchone()
        return None if row is None else Location(row[0], row[1], row[2])

    def lookup_many(self, mhs: Iterable[bytes]) -> dict[bytes, Location]:
        """The locations of those of ``mhs`` that are indexed, in one query per 500."""
        wanted = list(mhs)
        found: dict[bytes, Location] = {}
        with self._reader() as connection:
            for first in range(0, len(wanted), 500):
                batch = wanted[first : first + 500]
                marks = ",".join("?" * len(batch))
                for mh, pack, offset, length in connection.execute(
                    f"SELECT mh, pack, offset, length FROM blobs WHERE mh IN ({marks})", batch
                ):
                    found[mh] = Location(pack, offset, length)
        return found

    def highest_pack(self) -> int:
        with self._write_lock:
            row = self._writer.execute("SELECT MAX(number) FROM packs").fetchone()
        return 0 if row[0] is None else int(row[0])

    def add(self, entries: list[tuple[bytes, Location]]) -> None:
        """Record ``entries`` (and the packs they live in) in one durable transaction."""
        packs = sorted({location.pack for _, location in entries})
        with self._write_lock:
            with self._transaction():
                stored_at = now_ms()
                self._writer.executemany(
                    "INSERT OR IGNORE INTO blobs (mh, pack, offset, length, stored_at_ms)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(mh, loc.pack, loc.offset, loc.length, stored_at) for mh, loc in entries],
                )
                self._writer.executemany(
                    "INSERT OR IGNORE INTO packs (number) VALUES (?)", [(n,) for n in packs]
                )

    def freshen(self, entries: Sequence[tuple[bytes, Location]]) -> list[bool]:
        """Date each blob's row anew, if it still points at that location: a put that
        deduplicated against it stored it now, as far as garbage collection's grace is
        concerned (see ``relay.store.base``). Whether each row was there.

        Not synced on its own: it need not survive a crash that the put's own commit does
        not, and the sync before that commit (a FULL transaction of this connection)
        makes the WAL durable up to and including it."""
        if not entries:
            return []
        with self._write_lock:
            self._writer.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._transaction():
                    stored_at = now_ms()
                    found = [
                        self._writer.execute(
                            "UPDATE blobs SET stored_at_ms = ?"
                            " WHERE mh = ? AND pack = ? AND offset = ?",
                            (stored_at, mh, location.pack, location.offset),
                        ).rowcount
                        == 1
                        for mh, location in entries
                    ]
            finally:
                self._writer.execute("PRAGMA synchronous=FULL")
        return found

    def remove_if_stored_before(self, mh: bytes, stored_before_ms: int) -> bool:
        """Forget ``mh``, durably, only if it was last stored before ``stored_before_ms``:
        decided in the transaction that deletes, so a put that freshened the row first
        keeps it, and one that comes after finds it gone and writes the blob again."""
        with self._write_lock:
            with self._transaction():
                deleted: int = self._writer.execute(
                    "DELETE FROM blobs WHERE mh = ? AND stored_at_ms <= ?", (mh, stored_before_ms)
                ).rowcount
        return deleted == 1

    def remove(self, mhs: Iterable[bytes]) -> None:
        with self._write_lock:
            with self._transaction():
                self._writer.executemany("DELETE FROM blobs WHERE mh = ?", [(mh,) for mh in mhs])

    def remove_at(self, entries: Iterable[tuple[bytes, Location]]) -> None:
        """Forget each blob, durably, only if its row still points at that location: a
        row another put wrote since (the blob stored again elsewhere) is kept."""
        with self._write_lock:
            with self._transaction():
                self._writer.executemany(
                    "DELETE FROM blobs WHERE mh = ? AND pack = ? AND offset = ?",
                    [(mh, location.pack, location.offset) for mh, location in entries],
                )

    def page(self, after: bytes, limit: int) -> list[IndexedBlob]:
        """Up to ``limit`` indexed blobs whose multihash sorts after ``after``, in order."""
        with self._reader() as connection:
            rows = connection.execute(
                "SELECT mh, pack, offset, length, stored_at_ms FROM blobs WHERE mh > ?"
                " ORDER BY mh LIMIT ?",
                (after, limit),
            ).fetchall()
        return [IndexedBlob(row[0], Location(row[1], row[2], row[3]), row[4]) for row in rows]

    def pack_usage(self) -> dict[int, PackUsage]:
        """Every pack the index points into, with its live records and bytes."""
        with self._reader() as connection:
            rows = connection.execute(
                "SELECT pack, COUNT(*), SUM(length + 14 + LENGTH(mh)) FROM blobs GROUP BY pack"
            ).fetchall()
        return {row[0]: PackUsage(row[0], row[1], row[2]) for row in rows}

    def in_pack(self, pack: int) -> list[tuple[bytes, Location]]:
        """The blobs indexed in ``pack``, in the order of their records."""
        with self._reader() as connection:
            rows = connection.execute(
                "SELECT mh, offset, length FROM blobs WHERE pack = ? ORDER BY offset", (pack,)
            ).fetchall()
        return [(row[0], Location(pack, row[1], row[2])) for row in rows]

    def move(self, moves: list[tuple[bytes, Location, Location]]) -> int:
        """Re-point each blob from its old location to its new one, in one durable
        transaction; a row that no longer points at the old location (deleted, or stored
        again elsewhere since) is left alone. Returns how many rows moved."""
        packs = sorted({new.pack for _, _, new in moves})
        with self._write_lock:
            with self._transaction():
                moved = 0
                for mh, old, new in moves:
                    moved += self._writer.execute(
                        "UPDATE blobs SET pack = ?, offset = ?"
                        " WHERE mh = ? AND pack = ? AND offset = ?",
                        (new.pack, new.offset, mh, old.pack, old.offset),
                    ).rowcount
                self._writer.executemany(
                    "INSERT OR IGNORE INTO packs (number) VALUES (?)", [(n,) for n in packs]
                )
        return moved

    def close(self) -> None:
        with self._readers_lock:
            for connection in self._all_readers:
                connection.close()
            self._all_readers.clear()
        with self._write_lock:
            self._writer.close()
