"""The SQLite registry (the embedded default).

WAL mode with ``synchronous=FULL``: a commit that returned survives a crash or a power
cut. Two connections: one for writes, one for reads, each used by one worker thread at a
time (a ``CapacityLimiter`` of one), so the trio thread never blocks on SQLite and reads
proceed while a commit is being written (WAL readers do not wait for the writer).

The root swap is a compare-and-swap on the bucket's version, in the same transaction as
the commit log row, the block locations of the commit's CARs and the blobs the commit
makes reachable from the bucket (``bucket_reach``, ``body_parts``): after a crash either
all of a commit is visible or none of it.

Reach. ``bucket_reach`` holds (bucket, blob) for every object body and commit CAR the
bucket's history ever committed; ``body_parts`` holds (blob, body) for the chunks and
index CAR under each body of more than one chunk. A blob is reachable from a bucket if the
bucket reaches it directly or reaches a body it is part of: two index lookups, whatever
the bucket's size. Two tables rather than one so that a copy (or the same bytes put
under many keys) costs one row, not one per chunk. History is kept whole today, so a
deleted object's blobs stay reachable from its bucket; garbage collection with history
retention will prune ``bucket_reach`` in its sweep (and ``body_parts`` rows no bucket
reaches). Deleting a bucket deletes its rows: a later bucket of the same name, perhaps
another key's, inherits nothing.

Schema versions. ``meta.schema_version`` says which schema a file has; opening an older
file upgrades it in one transaction (``_MIGRATIONS``), a newer one is refused. Version 2
added the reach tables: the upgrade fills ``bucket_reach`` with every commit CAR from the
commit log and marks ``reach_backfill`` pending, and ``relay.bucket.reach`` records the
objects of each bucket's current root once, on the engine's first start over the file.
Version 3 added ``completed_uploads``: a completed multipart upload's part list and object
manifest, kept for a while so that a retried CompleteMultipartUpload gets the same answer.
Version 5 added ``pins`` (roots garbage collection keeps whatever their age) and an index
of the commit log by time (what history retention keeps).

Garbage collection (``relay.bucket.gc``) reads the retained roots here and, after the store
deleted a batch of unreachable blobs, ``forget_blobs`` drops every row that names them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import trio

from relay.ipld.cid import CID
from relay.registry.base import (
    NO_REACH,
    BlockLocation,
    BucketExists,
    BucketMissing,
    BucketRecord,
    Claim,
    CommitConflict,
    CommitRecord,
    CompletedUploadRecord,
    PartRecord,
    PinRecord,
    Reach,
    RegistryError,
    UploadMissing,
    UploadRecord,
    now_ms,
)

T = TypeVar("T")

SCHEMA_VERSION: Final = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    root BLOB NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commits (
    bucket TEXT NOT NULL,
    version INTEGER NOT NULL,
    root BLOB NOT NULL,
    time_ms INTEGER NOT NULL,
    car BLOB,
    puts INTEGER NOT NULL,
    deletes INTEGER NOT NULL,
    PRIMARY KEY (bucket, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS block_locations (
    block BLOB PRIMARY KEY,
    blob BLOB NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS multipart_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    owner TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    request BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS multipart_uploads_by_key ON multipart_uploads (bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS multipart_parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    part BLOB NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completed_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    owner TEXT NOT NULL,
    parts TEXT NOT NULL,
    manifest BLOB NOT NULL,
    completed_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS completed_uploads_by_age ON completed_uploads (completed_ms);
CREATE TABLE IF NOT EXISTS claims (
    content BLOB NOT NULL,
    url TEXT NOT NULL,
    range_offset INTEGER,
    range_length INTEGER,
    PRIMARY KEY (content, url)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bucket_reach (
    bucket TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (bucket, content)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bucket_reach_by_content ON bucket_reach (content, bucket);
CREATE TABLE IF NOT EXISTS bucket_settings (
    bucket TEXT NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (bucket, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS body_parts (
    blob BLOB NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (blob, body)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS body_parts_by_body ON body_parts (body);
CREATE INDEX IF NOT EXISTS block_locations_by_blob ON block_locations (blob);
CREATE INDEX IF NOT EXISTS commits_by_time ON commits (time_ms);
CREATE TABLE IF NOT EXISTS pins (
    name TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    root BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
"""


def _upgrade_1_to_2(db: sqlite3.Connection) -> None:
    # The tables exist already (_SCHEMA creates what is missing). Commit CARs are known
    # from the commit log; object bodies need the blob store: relay.bucket.reach.
    db.execute(
        "INSERT OR IGNORE INTO bucket_reach (bucket, content)"
        " SELECT bucket, car FROM commits WHERE car IS NOT NULL"
    )
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('reach_backfill', 'pending')")


def _upgrade_2_to_3(db: sqlite3.Connection) -> None:
    # Version 3 adds completed_uploads, which _SCHEMA creates and which starts empty: an
    # upload completed before the upgrade was forgotten then, and a retry of it is 404.
    pass


def _upgrade_3_to_4(db: sqlite3.Connection) -> None:
    # Version 4 adds bucket_settings (a bucket's policy, ACL, CORS rules...), which _SCHEMA
    # creates empty: no bucket had any before.
    pass


def _upgrade_4_to_5(db: sqlite3.Connection) -> None:
    # Version 5 adds pins (empty: nothing was pinned before) and the indexes garbage
    # collection reads by (commits by time, block locations by blob, body parts by
    # body), all of which _SCHEMA creates.
    pass


# version → the step that upgrades a file of that version to the next one
_MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    1: _upgrade_1_to_2,
    2: _upgrade_2_to_3,
    3: _upgrade_3_to_4,
    4: _upgrade_4_to_5,
}


def _open_schema(db: sqlite3.Connection) -> None:
    """Create what is missing, then bring an older file up to ``SCHEMA_VERSION``."""
    db.executescript(_SCHEMA)
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = SCHEMA_VERSION if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"the registry has schema version {version}; this relay reads up to"
                f" {SCHEMA_VERSION}: upgrade relay"
            )
        while version < SCHEMA_VERSION:
            _MIGRATIONS[version](db)
            version += 1
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(version),),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _record_reach(db: sqlite3.Connection, bucket: str, reach: Reach) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO bucket_reach (bucket, content) VALUES (?, ?)",
        [(bucket, body) for body in reach.bodies],
    )
    db.executemany("INSERT OR IGNORE INTO body_parts (blob, body) VALUES (?, ?)", reach.parts)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def _bucket(row: tuple[str, str, int, bytes, int]) -> BucketRecord:
    name, owner, created_ms, root, version = row
    return BucketRecord(name, owner, created_ms, CID(root), version)


def _upload(row: tuple[str, str, bytes, str, int, bytes]) -> UploadRecord:
    upload_id, bucket, key, owner, created_ms, request = row
    return UploadRecord(upload_id, bucket, key.decode("utf-8"), owner, created_ms, request)


@dataclass(eq=False)
class _HeadRead:
    """A bucket_head read in flight, which later askers of the same data version join."""

    done: trio.Event = field(default_factory=trio.Event)
    record: BucketRecord | None = None
    error: BaseException | None = None


# How long bucket_head's probe waits on a lock (a checkpoint, a recovery) before it stops
# trusting its remembered heads and reads the database in a worker thread.
_PROBE_TIMEOUT_SECONDS: Final = 0.05


class SqliteRegistry:  # implements relay.registry.base.Registry
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = _connect(path)
        try:
            _open_schema(self._writer)
        except BaseException:
            self._writer.close()
            raise
        self._reader = _connect(path)
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1)
        # bucket_head's proof that nothing changed: PRAGMA data_version on a connection of
        # its own moves whenever any other connection (this process's writer, another
        # process) commits. Asked on the trio thread: it reads the WAL index, no I/O.
        self._probe = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=_PROBE_TIMEOUT_SECONDS
        )
        self._heads: dict[str, BucketRecord | None] = {}
        self._heads_as_of = -1
        self._head_reads: dict[tuple[str, int], _HeadRead] = {}
        # The task inside hold_bucket, whose writes join the transaction it holds open.
        self._holder: trio.lowlevel.Task | None = None

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._holder is not None and self._holder is trio.lowlevel.current_task():
            # Inside hold_bucket: part of the transaction it holds open.
            return await trio.to_thread.run_sync(work, self._writer)

        def transaction() -> T:
            connection = self._writer
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return await trio.to_thread.run_sync(transaction, limiter=self._write_limiter)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await trio.to_thread.run_sync(work, self._reader, limiter=self._read_limiter)

    async def ping(self) -> None:
        """Return once the database answers a query (a readiness check)."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("SELECT 1 FROM buckets LIMIT 1").fetchall()

        await self._read(work)

    # -- buckets -------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str, root: CID) -> BucketRecord:
        created = now_ms()

        def work(db: sqlite3.Connection) -> BucketRecord:
            row = db.execute("SELECT owner FROM buckets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                raise BucketExists(name, row[0])
            db.execute(
                "INSERT INTO buckets (name, owner, created_ms, root, version)"
                " VALUES (?, ?, ?, ?, 0)",
                (name, owner, created, root.bytes),
            )
            db.execute(
                "INSERT INTO commits (bucket, version, root, time_ms, car, puts, deletes)"
                " VALUES (?, 0, ?, ?, NULL, 0, 0)",
                (name, root.bytes, created),
            )
            return BucketRecord(name, owner, created, root, 0)

        return await self._write(work)

    async def delete_bucket(self, name: str, *, expected_version: int) -> None:
        """Forget a bucket and its commit log, if it is still at ``expected_version``."""

        def work(db: sqlite3.Connection) -> None:
            deleted = db.execute(
                "DELETE FROM buckets WHERE name = ? AND version = ?", (name, expected_version)
            ).rowcount
            if deleted != 1:
                if db.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone():
                    raise CommitConflict(name, expected_version)
                raise BucketMissing(name)
            db.execute("DELETE FROM commits WHERE bucket = ?", (name,))
            db.execute("DELETE FROM bucket_reach WHERE bucket = ?", (name,))
            db.execute("DELETE FROM bucket_settings WHERE bucket = ?", (name,))

        await self._write(work)

    async def bucket_head(self, name: str) -> BucketRecord | None:
        try:
            # fetchall: step the statement to its end, so no read transaction stays open
            as_of = int(self._probe.execute("PRAGMA data_version").fetchall()[0][0])
        except sqlite3.Error:
            return await self.get_bucket(name)
        if as_of != self._heads_as_of:
            self._heads.clear()
            self._heads_as_of = as_of
        elif name in self._heads:
            return self._heads[name]
        # One read per bucket and data version, however many requests ask at once: a read
        # begun after a probe saw ``as_of`` sees every commit that probe could know of.
        reading = self._head_reads.get((name, as_of))
        if reading is None:
            reading = self._head_reads[name, as_of] = _HeadRead()
            try:
                reading.record = await self.get_bucket(name)
            except BaseException as exc:
                reading.error = exc
                raise
            finally:
                del self._head_reads[name, as_of]
                reading.done.set()
            if self._heads_as_of == as_of:  # a later commit moved the probe: not cached
                self._heads[name] = reading.record
            return reading.record
        await reading.done.wait()
        if reading.error is not None:
            return await self.get_bucket(name)
        return reading.record

    async def get_bucket_settings(self, bucket: str) -> dict[str, bytes]:
        def work(db: sqlite3.Connection) -> dict[str, bytes]:
            rows = db.execute(
                "SELECT name, value FROM bucket_settings WHERE bucket = ?", (bucket,)
            ).fetchall()
            return {str(name): bytes(value) for name, value in rows}

        return await self._read(work)

    async def put_bucket_setting(self, bucket: str, name: str, value: bytes | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is None:
                raise BucketMissing(bucket)
            if value is None:
                db.execute(
                    "DELETE FROM bucket_settings WHERE bucket = ? AND name = ?", (bucket, name)
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO bucket_settings (bucket, name, value) VALUES (?, ?, ?)",
                    (bucket, name, value),
                )

        await self._write(work)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        def work(db: sqlite3.Connection) -> BucketRecord | None:
            row = db.execute(
                "SELECT name, owner, created_ms, root, version FROM buckets WHERE name = ?",
                (name,),
            ).fetchone()
            return None if row is None else _bucket(row)

        return await self._read(work)

    async def list_buckets(self) -> list[BucketRecord]:
        def work(db: sqlite3.Connection) -> list[BucketRecord]:
            rows = db.execute(
                "SELECT name, owner, created_ms, root, version FROM buckets ORDER BY name"
            ).fetchall()
            return [_bucket(row) for row in rows]

        return await self._read(work)

    # -- commits -------------------------------------------------------------------------

    async def commit(
        self,
        bucket: str,
        *,
        expected_version: int,
        root: CID,
        car: bytes | None,
        locations: Sequence[BlockLocation],
        puts: int,
        deletes: int,
        reach: Reach = NO_REACH,
    ) -> CommitRecord:
        """Swap the bucket's root if it is still at ``expected_version`` (else
        ``CommitConflict``), log the commit and record its blocks' locations and what it
        makes reachable from the bucket (``reach`` and the commit CAR), atomically."""
        time_ms = now_ms()
        version = expected_version + 1

        def work(db: sqlite3.Connection) -> CommitRecord:
            updated = db.execute(
                "UPDATE buckets SET root = ?, version = ? WHERE name = ? AND version = ?",
                (root.bytes, version, bucket, expected_version),
            ).rowcount
            if updated != 1:
                if db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone():
                    raise CommitConflict(bucket, expected_version)
                raise BucketMissing(bucket)
            db.executemany(
                "INSERT OR REPLACE INTO block_locations (block, blob, offset, length)"
                " VALUES (?, ?, ?, ?)",
                [(loc.block, loc.blob, loc.offset, loc.length) for loc in locations],
            )
            db.execute(
                "INSERT INTO commits (bucket, version, root, time_ms, car, puts, deletes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (bucket, version, root.bytes, time_ms, car, puts, deletes),
            )
            _record_reach(
                db, bucket, Reach(reach.bodies + (() if car is None else (car,)), reach.parts)
            )
            return CommitRecord(bucket, version, root, time_ms, car, puts, deletes)

        return await self._write(work)

    @asynccontextmanager
    async def hold_bucket(self, name: str) -> AsyncIterator[BucketRecord]:
        """Hold the registry's write lock (SQLite has one per database: every other
        writer, in this process or another, waits) and yield the bucket as it is; a
        ``commit`` from inside cannot lose, and becomes durable when the block exits
        without an error (rolled back otherwise)."""
        async with self._write_limiter:
            writer = self._writer
            await trio.to_thread.run_sync(writer.execute, "BEGIN IMMEDIATE")
            self._holder = trio.lowlevel.current_task()
            try:
                row = await trio.to_thread.run_sync(
                    lambda: writer.execute(
                        "SELECT name, owner, created_ms, root, version FROM buckets WHERE name = ?",
                        (name,),
                    ).fetchall()
                )
                if not row:
                    raise BucketMissing(name)
                yield _bucket(row[0])
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(writer.execute, "ROLLBACK")
                raise
            else:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(writer.execute, "COMMIT")
            finally:
                self._holder = None

    async def commit_log(
        self, bucket: str, *, newest_first: bool = True, limit: int | None = None
    ) -> list[CommitRecord]:
        order = "DESC" if newest_first else "ASC"

        def work(db: sqlite3.Connection) -> list[CommitRecord]:
            rows = db.execute(
                "SELECT version, root, time_ms, car, puts, deletes FROM commits"
                f" WHERE bucket = ? ORDER BY version {order} LIMIT ?",
                (bucket, -1 if limit is None else limit),
            ).fetchall()
            return [CommitRecord(bucket, v, CID(r), t, c, p, d) for v, r, t, c, p, d in rows]

        return await self._read(work)

    async def root_at(self, bucket: str, version: int) -> CID | None:
        def work(db: sqlite3.Connection) -> CID | None:
            row = db.execute(
                "SELECT root FROM commits WHERE bucket = ? AND version = ?", (bucket, version)
            ).fetchone()
            return None if row is None else CID(row[0])

        return await self._read(work)

    async def commit_at(self, bucket: str, version: int) -> CommitRecord | None:
        def work(db: sqlite3.Connection) -> CommitRecord | None:
            row = db.execute(
                "SELECT root, time_ms, car, puts, deletes FROM commits"
                " WHERE bucket = ? AND version = ?",
                (bucket, version),
            ).fetchone()
            if row is None:
                return None
            root, time_ms, car, puts, deletes = row
            return CommitRecord(bucket, version, CID(root), time_ms, car, puts, deletes)

        return await self._read(work)

    async def commits_since(self, since_ms: int) -> list[CommitRecord]:
        """Every bucket's commits made at or after ``since_ms``."""

        def work(db: sqlite3.Connection) -> list[CommitRecord]:
            rows = db.execute(
                "SELECT bucket, version, root, time_ms, car, puts, deletes FROM commits"
                " WHERE time_ms >= ?",
                (since_ms,),
            ).fetchall()
            return [CommitRecord(b, v, CID(r), t, c, p, d) for b, v, r, t, c, p, d in rows]

        return await self._read(work)

    # -- pins ----------------------------------------------------------------------------

    async def set_pin(self, name: str, bucket: str, root: CID | None) -> None:
        """Pin ``root`` under ``name`` (replacing what that name pinned); None unpins."""
        created = now_ms()

        def work(db: sqlite3.Connection) -> None:
            if root is None:
                db.execute("DELETE FROM pins WHERE name = ?", (name,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO pins (name, bucket, root, created_ms)"
                    " VALUES (?, ?, ?, ?)",
                    (name, bucket, root.bytes, created),
                )

        await self._write(work)

    async def list_pins(self) -> list[PinRecord]:
        def work(db: sqlite3.Connection) -> list[PinRecord]:
            rows = db.execute(
                "SELECT name, bucket, root, created_ms FROM pins ORDER BY name"
            ).fetchall()
            return [
                PinRecord(name, bucket, CID(root), created) for name, bucket, root, created in rows
            ]

        return await self._read(work)

    # -- block locations -----------------------------------------------------------------

    async def find_block(self, block: bytes) -> BlockLocation | None:
        def work(db: sqlite3.Connection) -> BlockLocation | None:
            row = db.execute(
                "SELECT blob, offset, length FROM block_locations WHERE block = ?", (block,)
            ).fetchone()
            return None if row is None else BlockLocation(block, row[0], row[1], row[2])

        return await self._read(work)

    async def find_blocks(self, blocks: Iterable[bytes]) -> dict[bytes, BlockLocation]:
        wanted = list(blocks)

        def work(db: sqlite3.Connection) -> dict[bytes, BlockLocation]:
            found: dict[bytes, BlockLocation] = {}
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                marks = ",".join("?" * len(batch))
                for block, blob, offset, length in db.execute(
                    "SELECT block, blob, offset, length FROM block_locations"
                    f" WHERE block IN ({marks})",
                    batch,
                ):
                    found[block] = BlockLocation(block, blob, offset, length)
            return found

        return await self._read(work)

    async def forget_blobs(self, blobs: Collection[bytes]) -> None:
        """Forget every row naming these (deleted) blobs, in one transaction: the
        locations of the blocks inside them, their claims, what reaches them, and the
        reach of each body whose root block was inside one of them (a multi-chunk body's
        root is a block of its index CAR)."""
        wanted = list(blobs)

        def work(db: sqlite3.Connection) -> None:
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                marks = ",".join("?" * len(batch))
                inside = f"SELECT block FROM block_locations WHERE blob IN ({marks})"
                db.execute(f"DELETE FROM bucket_reach WHERE content IN ({inside})", batch)
                db.execute(f"DELETE FROM body_parts WHERE body IN ({inside})", batch)
                db.execute(f"DELETE FROM block_locations WHERE blob IN ({marks})", batch)
                db.execute(f"DELETE FROM bucket_reach WHERE content IN ({marks})", batch)
                db.execute(f"DELETE FROM body_parts WHERE blob IN ({marks})", batch)
                db.execute(f"DELETE FROM claims WHERE content IN ({marks})", batch)

        await self._write(work)

    # -- reach (see the module docstring) ------------------------------------------------

    async def content_reachable(
        self, content: bytes, *, owners: Collection[str], buckets: Collection[str] = ()
    ) -> bool:
        """Whether blob ``content`` is reachable from a bucket owned by one of ``owners``
        or named in ``buckets``."""
        owner_list, bucket_list = sorted(owners), sorted(buckets)
        readable = (
            f"(b.owner IN ({','.join('?' * len(owner_list))})"
            f" OR b.name IN ({','.join('?' * len(bucket_list))}))"
        )
        query = (
            "SELECT EXISTS (SELECT 1 FROM bucket_reach AS r JOIN buckets AS b"
            f" ON b.name = r.bucket WHERE r.content = ? AND {readable})"
            " OR EXISTS (SELECT 1 FROM body_parts AS p JOIN bucket_reach AS r"
            " ON r.content = p.body JOIN buckets AS b ON b.name = r.bucket"
            f" WHERE p.blob = ? AND {readable})"
        )
        parameters = [content, *owner_list, *bucket_list] * 2

        def work(db: sqlite3.Connection) -> bool:
            return bool(db.execute(query, parameters).fetchone()[0])

        return await self._read(work)

    async def record_reach(self, bucket: str, reach: Reach) -> None:
        """Record what ``bucket`` reaches outside a commit (the version 2 backfill)."""
        await self._write(lambda db: _record_reach(db, bucket, reach))

    async def reach_backfill_pending(self) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT value FROM meta WHERE key = 'reach_backfill'").fetchone()
            return row is not None and row[0] == "pending"

        return await self._read(work)

    async def finish_reach_backfill(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM meta WHERE key = 'reach_backfill'")

        await self._write(work)

    # -- multipart uploads ---------------------------------------------------------------

    async def create_upload(
        self, upload_id: str, bucket: str, key: str, owner: str, request: bytes
    ) -> UploadRecord:
        created = now_ms()

        def work(db: sqlite3.Connection) -> UploadRecord:
            db.execute(
                "INSERT INTO multipart_uploads (upload_id, bucket, key, owner, created_ms, request)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (upload_id, bucket, key.encode("utf-8"), owner, created, request),
            )
            return UploadRecord(upload_id, bucket, key, owner, created, request)

        return await self._write(work)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        def work(db: sqlite3.Connection) -> UploadRecord | None:
            row = db.execute(
                "SELECT upload_id, bucket, key, owner, created_ms, request"
                " FROM multipart_uploads WHERE upload_id = ?",
                (upload_id,),
            ).fetchone()
            return None if row is None else _upload(row)

        return await self._read(work)

    async def list_uploads(
        self, bucket: str, *, after_key: str = "", after_upload_id: str = "", limit: int = 1000
    ) -> list[UploadRecord]:
        """Uploads in (key, upload id) order, after the given marker. A key marker alone
        skips every upload of that key, as S3's key-marker does."""
        key = after_key.encode("utf-8")
        if after_key and not after_upload_id:
            after_upload_id = "\U0010ffff"  # past every upload id of the marker's key

        def work(db: sqlite3.Connection) -> list[UploadRecord]:
            rows = db.execute(
                "SELECT upload_id, bucket, key, owner, created_ms, request FROM multipart_uploads"
                " WHERE bucket = ? AND (key > ? OR (key = ? AND upload_id > ?))"
                " ORDER BY key, upload_id LIMIT ?",
                (bucket, key, key, after_upload_id, limit),
            ).fetchall()
            return [_upload(row) for row in rows]

        return await self._read(work)

    async def put_part(self, part: PartRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            if not db.execute(
                "SELECT 1 FROM multipart_uploads WHERE upload_id = ?", (part.upload_id,)
            ).fetchone():
                raise UploadMissing(part.upload_id)
            db.execute(
                "INSERT OR REPLACE INTO multipart_parts"
                " (upload_id, part_number, size, etag, created_ms, part) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    part.upload_id,
                    part.part_number,
                    part.size,
                    part.etag,
                    part.created_ms,
                    part.data,
                ),
            )

        await self._write(work)

    async def list_parts(
        self, upload_id: str, *, after_part: int = 0, limit: int = 10_000
    ) -> list[PartRecord]:
        def work(db: sqlite3.Connection) -> list[PartRecord]:
            rows = db.execute(
                "SELECT upload_id, part_number, size, etag, created_ms, part FROM multipart_parts"
                " WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
                (upload_id, after_part, limit),
            ).fetchall()
            return [PartRecord(*row) for row in rows]

        return await self._read(work)

    async def delete_upload(self, upload_id: str) -> bool:
        """Forget an upload and its parts; whether it existed."""

        def work(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM multipart_parts WHERE upload_id = ?", (upload_id,))
            return bool(
                db.execute(
                    "DELETE FROM multipart_uploads WHERE upload_id = ?", (upload_id,)
                ).rowcount
            )

        return await self._write(work)

    async def complete_upload(
        self, upload_id: str, parts: str, manifest: bytes, *, forget_before_ms: int
    ) -> None:
        """Forget an upload and its parts and remember what completing it made, in one
        transaction: ``parts`` names the part list completed, ``manifest`` the object.
        Results completed before ``forget_before_ms`` are forgotten."""

        def work(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT bucket, key, owner FROM multipart_uploads WHERE upload_id = ?",
                (upload_id,),
            ).fetchone()
            db.execute("DELETE FROM multipart_parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM multipart_uploads WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM completed_uploads WHERE completed_ms < ?", (forget_before_ms,))
            if row is not None:
                db.execute(
                    "INSERT OR REPLACE INTO completed_uploads"
                    " (upload_id, bucket, key, owner, parts, manifest, completed_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (upload_id, *row, parts, manifest, now_ms()),
                )

        await self._write(work)

    async def get_completed_upload(self, upload_id: str) -> CompletedUploadRecord | None:
        def work(db: sqlite3.Connection) -> CompletedUploadRecord | None:
            row = db.execute(
                "SELECT upload_id, bucket, key, owner, parts, manifest, completed_ms"
                " FROM completed_uploads WHERE upload_id = ?",
                (upload_id,),
            ).fetchone()
            if row is None:
                return None
            upload, bucket, key, owner, parts, manifest, completed = row
            return CompletedUploadRecord(
                upload, bucket, key.decode("utf-8"), owner, parts, manifest, completed
            )

        return await self._read(work)

    # -- location claims -----------------------------------------------------------------

    async def add_claims(self, claims: Sequence[Claim]) -> None:
        """Record claims (idempotent: a claim for the same content and URL is replaced)."""

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO claims (content, url, range_offset, range_length)"
                " VALUES (?, ?, ?, ?)",
                [(c.content, c.url, c.offset, c.length) for c in claims],
            )

        await self._write(work)

    async def claims_for(self, content: bytes) -> list[Claim]:
        """Every claim for a multihash, in a stable order (by URL)."""

        def work(db: sqlite3.Connection) -> list[Claim]:
            rows = db.execute(
                "SELECT url, range_offset, range_length FROM claims WHERE content = ? ORDER BY url",
                (content,),
            ).fetchall()
            return [Claim(content, url, offset, length) for url, offset, length in rows]

        return await self._read(work)

    async def all_claims(
        self, *, after: tuple[bytes, str] = (b"", ""), limit: int = 10_000
    ) -> list[Claim]:
        """Claims in (content, url) order after ``after``: page through them all."""

        def work(db: sqlite3.Connection) -> list[Claim]:
            rows = db.execute(
                "SELECT content, url, range_offset, range_length FROM claims"
                " WHERE content > ? OR (content = ? AND url > ?) ORDER BY content, url LIMIT ?",
                (after[0], after[0], after[1], limit),
            ).fetchall()
            return [Claim(content, url, offset, length) for content, url, offset, length in rows]

        return await self._read(work)

    async def aclose(self) -> None:
        def close() -> None:
            self._probe.close()
            self._reader.close()
            self._writer.close()

        async with self._write_limiter, self._read_limiter:
            await trio.to_thread.run_sync(close)


@asynccontextmanager
async def open_sqlite_registry(path: Path) -> AsyncIterator[SqliteRegistry]:
    path.parent.mkdir(parents=True, exist_ok=True)
    registry = await trio.to_thread.run_sync(SqliteRegistry, path)
    try:
        yield registry
    finally:
        with trio.CancelScope(shield=True):
            await registry.aclose()
