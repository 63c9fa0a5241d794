"""The PostgreSQL registry: one set of buckets shared by many relay processes and hosts.

Theory of operation. ``PostgresRegistry`` records exactly what ``SqliteRegistry`` records
(see ``relay.registry.sqlite``), with the same answers and the same errors; the
difference is who else writes. Any number of relay processes on any number of hosts open
the same database, so every method is written for a concurrent writer it cannot see:

- **The root swap is a compare-and-swap.** ``commit`` runs ``UPDATE buckets SET root,
  version = version + 1 WHERE name AND version = expected`` first in its transaction, then
  the commit log row, the block locations and the reach rows. The UPDATE takes the
  bucket's row lock, so two hosts committing on one version serialise on it: the second
  sees the first's new version when the lock is released (READ COMMITTED re-checks the
  WHERE clause on the updated row), updates nothing and raises ``CommitConflict``. Zero
  rows and no bucket is ``BucketMissing``. One linear history per bucket follows.
- **Rows are locked in one order.** Rows two commits may share (``block_locations``,
  ``body_parts``) are written sorted by key, so two transactions never wait on each other
  in a cycle. Deletions take the parent row first (the upload, the bucket) and writers of
  children lock that parent row ``FOR SHARE`` before writing, so a part or a setting is
  never written under an upload or bucket another host has just deleted.
- **Threads, not asyncio.** psycopg's async API runs on asyncio, relay on trio, so each
  call runs a blocking psycopg call in a worker thread (``trio.to_thread``) with a
  connection from a ``psycopg_pool.ConnectionPool``; a ``CapacityLimiter`` of the pool's
  size keeps threads from queueing inside the pool.
- **Unavailability is typed and bounded.** Every wait has a bound from
  ``RegistryConfig``: a connection (new, or from the pool) within
  ``connect_timeout_seconds``; each statement within ``statement_timeout_seconds``
  (PostgreSQL's own ``statement_timeout``); a silent peer is dropped after
  ``network_timeout_seconds`` (TCP keepalives and ``tcp_user_timeout``). Whatever psycopg
  raises for a database that is down, restarting or unreachable becomes
  ``RegistryUnavailable`` (S3: 503 ServiceUnavailable), its text scrubbed of the URL's
  password. The pool checks a connection before lending it and replaces broken ones in
  the background, so service resumes by itself once PostgreSQL is back. A commit whose
  COMMIT was sent but not answered has an unknown outcome: it is reported unavailable
  like any other, and the bucket's version (which the next commit compares) says what
  happened.
- **Migrations.** ``_MIGRATIONS[v]`` is the SQL that takes a database from schema version
  ``v`` to ``v + 1`` (0: an empty database). At open, one transaction takes a
  transaction-level advisory lock (``pg_advisory_xact_lock``), reads the newest version in
  ``schema_migrations``, applies what is missing, each with its row, and commits, which
  releases the lock: hosts starting at once apply each migration once, and the others
  find it applied. A database newer than this relay knows is refused.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import psycopg
import trio
from psycopg_pool import ConnectionPool

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
    RegistryUnavailable,
    UploadMissing,
    UploadRecord,
    now_ms,
)
from relay.registry.config import RegistryConfig, redact_url, scrub

T = TypeVar("T")

# Text columns that are compared or ordered use the "C" collation: byte order, as SQLite
# compares, whatever locale the database was created with. Object keys are bytea for the
# same reason (S3 lists keys in UTF-8 byte order).
_SCHEMA_V1: Final = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE buckets (
    name TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    root BYTEA NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE commits (
    bucket TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    root BYTEA NOT NULL,
    time_ms BIGINT NOT NULL,
    car BYTEA,
    puts BIGINT NOT NULL,
    deletes BIGINT NOT NULL,
    PRIMARY KEY (bucket, version)
);
CREATE TABLE block_locations (
    block BYTEA PRIMARY KEY,
    blob BYTEA NOT NULL,
    "offset" BIGINT NOT NULL,
    length BIGINT NOT NULL
);
CREATE TABLE multipart_uploads (
    upload_id TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    owner TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    request BYTEA NOT NULL
);
CREATE INDEX multipart_uploads_by_key ON multipart_uploads (bucket, key, upload_id);
CREATE TABLE multipart_parts (
    upload_id TEXT COLLATE "C" NOT NULL,
    part_number INTEGER NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    part BYTEA NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
CREATE TABLE completed_uploads (
    upload_id TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    owner TEXT NOT NULL,
    parts TEXT NOT NULL,
    manifest BYTEA NOT NULL,
    completed_ms BIGINT NOT NULL
);
CREATE INDEX completed_uploads_by_age ON completed_uploads (completed_ms);
CREATE TABLE claims (
    content BYTEA NOT NULL,
    url TEXT COLLATE "C" NOT NULL,
    range_offset BIGINT,
    range_length BIGINT,
    PRIMARY KEY (content, url)
);
CREATE TABLE bucket_reach (
    bucket TEXT COLLATE "C" NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (bucket, content)
);
CREATE INDEX bucket_reach_by_content ON bucket_reach (content, bucket);
CREATE TABLE bucket_settings (
    bucket TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (bucket, name)
);
CREATE TABLE body_parts (
    blob BYTEA NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (blob, body)
);
"""

# Version 2: what garbage collection reads and keeps: pins (roots kept beyond history
# retention), and the indexes it reads by (commits by time, block locations by blob, body
# parts by body).
_SCHEMA_V2: Final = """
CREATE TABLE pins (
    name TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    root BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX commits_by_time ON commits (time_ms);
CREATE INDEX block_locations_by_blob ON block_locations (blob);
CREATE INDEX body_parts_by_body ON body_parts (body);
"""

# _MIGRATIONS[v] takes a database at schema version v to v + 1 (0: empty). Append only.
_MIGRATIONS: Final[tuple[str, ...]] = (_SCHEMA_V1, _SCHEMA_V2)
SCHEMA_VERSION: Final = len(_MIGRATIONS)

# The advisory lock migrations hold (any fixed 64-bit number; this one spells "relayreg").
_MIGRATION_LOCK: Final = 0x72656C6179726567

# What psycopg raises for a database that is down, restarting, unreachable or too slow:
# OperationalError covers failed connections, the pool's timeout, a server shut down under
# a statement, statement_timeout (QueryCanceled) and deadlocks; InterfaceError a
# connection that is already closed.
_UNAVAILABLE: Final = (psycopg.OperationalError, psycopg.InterfaceError)


def _migrate(db: psycopg.Connection[Any]) -> int:
    """Bring the database up to ``SCHEMA_VERSION`` (see the module docstring); its version."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)"
        )
        row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        version = 0 if row is None or row[0] is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"the registry has schema version {version}; this relay reads up to"
                f" {SCHEMA_VERSION}: upgrade relay"
            )
        while version < SCHEMA_VERSION:
            db.execute(_MIGRATIONS[version].encode("utf-8"))
            version += 1
            db.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (%s, %s)",
                (version, now_ms()),
            )
    return version


def _record_reach(db: psycopg.Connection[Any], bucket: str, reach: Reach) -> None:
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bucket_reach (bucket, content) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(bucket, body) for body in sorted(set(reach.bodies))],
        )
        cursor.executemany(
            "INSERT INTO body_parts (blob, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            sorted(set(reach.parts)),
        )


def _bucket(row: tuple[Any, ...]) -> BucketRecord:
    name, owner, created_ms, root, version = row
    return BucketRecord(name, owner, created_ms, CID(bytes(root)), version)


def _optional_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _upload(row: tuple[Any, ...]) -> UploadRecord:
    upload_id, bucket, key, owner, created_ms, request = row
    return UploadRecord(
        upload_id, bucket, bytes(key).decode("utf-8"), owner, created_ms, bytes(request)
    )


def _connection_settings(config: RegistryConfig) -> dict[str, Any]:
    """libpq settings that bound every wait (see ``RegistryConfig``)."""
    network_ms = math.ceil(config.network_timeout_seconds * 1000)
    keepalive_idle = max(1, math.floor(config.network_timeout_seconds / 2))
    keepalive_interval = max(1, math.floor(config.network_timeout_seconds / 6))
    return {
        "autocommit": True,  # a read is one statement; a write opens its own transaction
        "application_name": "relay",
        # libpq counts whole seconds and treats less than 2 as 2.
        "connect_timeout": max(2, math.ceil(config.connect_timeout_seconds)),
        # The server's side of the same bounds: a relay host cut off in the middle of a
        # transaction (its row lock on a bucket held) is dropped by the server after the
        # network timeout, so the other hosts' commits of that bucket wait no longer.
        "options": " ".join(
            [
                f"-c statement_timeout={math.ceil(config.statement_timeout_seconds * 1000)}",
                f"-c idle_in_transaction_session_timeout={network_ms}",
                f"-c tcp_keepalives_idle={keepalive_idle}",
                f"-c tcp_keepalives_interval={keepalive_interval}",
                "-c tcp_keepalives_count=3",
                f"-c tcp_user_timeout={network_ms}",
            ]
        ),
        "keepalives": 1,
        "keepalives_idle": keepalive_idle,
        "keepalives_interval": keepalive_interval,
        "keepalives_count": 3,
        "tcp_user_timeout": network_ms,
    }


class PostgresRegistry:  # implements relay.registry.base.Registry
    """The registry in PostgreSQL (see the module docstring). Open it with
    ``open_postgres_registry``, which also applies migrations."""

    def __init__(self, config: RegistryConfig, pool: ConnectionPool[Any]) -> None:
        self.config = config
        self._pool = pool
        self._limiter = trio.CapacityLimiter(config.pool_size)
        # task inside hold_bucket -> the connection whose open transaction its writes join
        self._held: dict[trio.lowlevel.Task, psycopg.Connection[Any]] = {}

    def __repr__(self) -> str:
        return f"PostgresRegistry({redact_url(self.config.url)!r})"

    def _unavailable(self, exc: BaseException) -> RegistryUnavailable:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return RegistryUnavailable(
            f"the registry at {redact_url(self.config.url)} is unavailable:"
            f" {scrub(text, self.config.url)}"
        )

    def _run_sync(self, work: Callable[[psycopg.Connection[Any]], T], *, write: bool) -> T:
        try:
            with self._pool.connection(timeout=self.config.connect_timeout_seconds) as db:
                if not write:
                    return work(db)
                with db.transaction():
                    return work(db)
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from None

    async def _write(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` in one transaction of its own, committed when it returns (inside
        ``hold_bucket``: in the transaction it holds, committed when that ends)."""
        held = self._held.get(trio.lowlevel.current_task())
        if held is not None:
            return await trio.to_thread.run_sync(lambda: self._run_held(held, work))
        return await trio.to_thread.run_sync(
            lambda: self._run_sync(work, write=True), limiter=self._limiter
        )

    async def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        return await trio.to_thread.run_sync(
            lambda: self._run_sync(work, write=False), limiter=self._limiter
        )

    def _run_held(
        self, db: psycopg.Connection[Any], work: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        try:
            return work(db)
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from None

    @asynccontextmanager
    async def hold_bucket(self, name: str) -> AsyncIterator[BucketRecord]:
        """Lock the bucket's row (``SELECT ... FOR UPDATE``) in a transaction held open
        for the block and yield the bucket as it is: another host's commit of the bucket
        waits for the row (PostgreSQL queues waiters in order), then finds the version
        moved. A ``commit`` from inside joins the transaction, so it cannot lose; it is
        durable when the block exits without an error, rolled back otherwise."""
        task = trio.lowlevel.current_task()
        timeout = self.config.connect_timeout_seconds

        def begin() -> tuple[psycopg.Connection[Any], BucketRecord | None]:
            try:
                db = self._pool.getconn(timeout=timeout)
            except _UNAVAILABLE as exc:
                raise self._unavailable(exc) from None
            try:
                db.execute("BEGIN")
                row = db.execute(
                    "SELECT name, owner, created_ms, root, version FROM buckets"
                    " WHERE name = %s FOR UPDATE",
                    (name,),
                ).fetchone()
            except _UNAVAILABLE as exc:
                self._pool.putconn(db)
                raise self._unavailable(exc) from None
            except BaseException:
                self._end(db, "ROLLBACK")
                raise
            return db, None if row is None else _bucket(row)

        async with self._limiter:
            db, record = await trio.to_thread.run_sync(begin)
            self._held[task] = db
            try:
                if record is None:
                    raise BucketMissing(name)
                yield record
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._end, db, "ROLLBACK")
                raise
            else:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._end, db, "COMMIT", True)
            finally:
                del self._held[task]

    def _end(self, db: psycopg.Connection[Any], verb: str, check: bool = False) -> None:
        """End the held transaction and give the connection back (a broken one is
        discarded by the pool). A failed COMMIT is ``RegistryUnavailable``."""
        try:
            db.execute(verb)
        except _UNAVAILABLE as exc:
            if check:
                raise self._unavailable(exc) from None
        finally:
            self._pool.putconn(db)

    async def ping(self) -> None:
        """Return once the database answers a query (a readiness check)."""
        await self._read(lambda db: db.execute("SELECT 1 FROM buckets LIMIT 1").fetchall())

    # -- buckets -------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str, root: CID) -> BucketRecord:
        created = now_ms()

        def work(db: psycopg.Connection[Any]) -> BucketRecord:
            inserted = db.execute(
                "INSERT INTO buckets (name, owner, created_ms, root, version)"
                " VALUES (%s, %s, %s, %s, 0) ON CONFLICT (name) DO NOTHING",
                (name, owner, created, root.bytes),
            ).rowcount
            if inserted != 1:
                row = db.execute("SELECT owner FROM buckets WHERE name = %s", (name,)).fetchone()
                raise BucketExists(name, "" if row is None else row[0])
            db.execute(
                "INSERT INTO commits (bucket, version, root, time_ms, car, puts, deletes)"
                " VALUES (%s, 0, %s, %s, NULL, 0, 0)",
                (name, root.bytes, created),
            )
            return BucketRecord(name, owner, created, root, 0)

        return await self._write(work)

    async def delete_bucket(self, name: str, *, expected_version: int) -> None:
        """Forget a bucket and its commit log, if it is still at ``expected_version``."""

        def work(db: psycopg.Connection[Any]) -> None:
            deleted = db.execute(
                "DELETE FROM buckets WHERE name = %s AND version = %s", (name, expected_version)
            ).rowcount
            if deleted != 1:
                if db.execute("SELECT 1 FROM buckets WHERE name = %s", (name,)).fetchone():
                    raise CommitConflict(name, expected_version)
                raise BucketMissing(name)
            db.execute("DELETE FROM commits WHERE bucket = %s", (name,))
            db.execute("DELETE FROM bucket_reach WHERE bucket = %s", (name,))
            db.execute("DELETE FROM bucket_settings WHERE bucket = %s", (name,))

        await self._write(work)

    async def get_bucket_settings(self, bucket: str) -> dict[str, bytes]:
        def work(db: psycopg.Connection[Any]) -> dict[str, bytes]:
            rows = db.execute(
                "SELECT name, value FROM bucket_settings WHERE bucket = %s", (bucket,)
            ).fetchall()
            return {str(name): bytes(value) for name, value in rows}

        return await self._read(work)

    async def put_bucket_setting(self, bucket: str, name: str, value: bytes | None) -> None:
        def work(db: psycopg.Connection[Any]) -> None:
            # FOR SHARE: a concurrent delete_bucket waits for this transaction, then
            # deletes the setting with the bucket.
            if (
                db.execute("SELECT 1 FROM buckets WHERE name = %s FOR SHARE", (bucket,)).fetchone()
                is None
            ):
                raise BucketMissing(bucket)
            if value is None:
                db.execute(
                    "DELETE FROM bucket_settings WHERE bucket = %s AND name = %s", (bucket, name)
                )
            else:
                db.execute(
                    "INSERT INTO bucket_settings (bucket, name, value) VALUES (%s, %s, %s)"
                    " ON CONFLICT (bucket, name) DO UPDATE SET value = EXCLUDED.value",
                    (bucket, name, value),
                )

        await self._write(work)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        def work(db: psycopg.Connection[Any]) -> BucketRecord | None:
            row = db.execute(
                "SELECT name, owner, created_ms, root, version FROM buckets WHERE name = %s",
                (name,),
            ).fetchone()
            return None if row is None else _bucket(row)

        return await self._read(work)

    async def bucket_head(self, name: str) -> BucketRecord | None:
        # One indexed read: cheap enough per request, and no cache to prove current
        # across hosts.
        return await self.get_bucket(name)

    async def list_buckets(self) -> list[BucketRecord]:
        def work(db: psycopg.Connection[Any]) -> list[BucketRecord]:
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
        # One row per block (the last location given wins, as SQLite's REPLACE does), in
        # key order: see "Rows are locked in one order".
        by_block = {loc.block: loc for loc in locations}
        rows = [(b, loc.blob, loc.offset, loc.length) for b, loc in sorted(by_block.items())]

        def work(db: psycopg.Connection[Any]) -> CommitRecord:
            updated = db.execute(
                "UPDATE buckets SET root = %s, version = %s WHERE name = %s AND version = %s",
                (root.bytes, version, bucket, expected_version),
            ).rowcount
            if updated != 1:
                if db.execute("SELECT 1 FROM buckets WHERE name = %s", (bucket,)).fetchone():
                    raise CommitConflict(bucket, expected_version)
                raise BucketMissing(bucket)
            with db.cursor() as cursor:
                cursor.executemany(
                    'INSERT INTO block_locations (block, blob, "offset", length)'
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (block) DO UPDATE SET"
                    ' blob = EXCLUDED.blob, "offset" = EXCLUDED."offset", length = EXCLUDED.length',
                    rows,
                )
            db.execute(
                "INSERT INTO commits (bucket, version, root, time_ms, car, puts, deletes)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (bucket, version, root.bytes, time_ms, car, puts, deletes),
            )
            _record_reach(
                db, bucket, Reach(reach.bodies + (() if car is None else (car,)), reach.parts)
            )
            return CommitRecord(bucket, version, root, time_ms, car, puts, deletes)

        return await self._write(work)

    async def commit_log(
        self, bucket: str, *, newest_first: bool = True, limit: int | None = None
    ) -> list[CommitRecord]:
        order = "DESC" if newest_first else "ASC"

        def work(db: psycopg.Connection[Any]) -> list[CommitRecord]:
            rows = db.execute(
                "SELECT version, root, time_ms, car, puts, deletes FROM commits"
                f" WHERE bucket = %s ORDER BY version {order} LIMIT %s",
                (bucket, limit),  # LIMIT NULL: all
            ).fetchall()
            return [
                CommitRecord(bucket, v, CID(bytes(r)), t, None if c is None else bytes(c), p, d)
                for v, r, t, c, p, d in rows
            ]

        return await self._read(work)

    async def root_at(self, bucket: str, version: int) -> CID | None:
        def work(db: psycopg.Connection[Any]) -> CID | None:
            row = db.execute(
                "SELECT root FROM commits WHERE bucket = %s AND version = %s", (bucket, version)
            ).fetchone()
            return None if row is None else CID(bytes(row[0]))

        return await self._read(work)

    # -- block locations -----------------------------------------------------------------

    async def find_block(self, block: bytes) -> BlockLocation | None:
        def work(db: psycopg.Connection[Any]) -> BlockLocation | None:
            row = db.execute(
                'SELECT blob, "offset", length FROM block_locations WHERE block = %s', (block,)
            ).fetchone()
            return None if row is None else BlockLocation(block, bytes(row[0]), row[1], row[2])

        return await self._read(work)

    async def find_blocks(self, blocks: Iterable[bytes]) -> dict[bytes, BlockLocation]:
        wanted = list(blocks)

        def work(db: psycopg.Connection[Any]) -> dict[bytes, BlockLocation]:
            found: dict[bytes, BlockLocation] = {}
            for start in range(0, len(wanted), 1000):
                rows = db.execute(
                    'SELECT block, blob, "offset", length FROM block_locations'
                    " WHERE block = ANY(%s)",
                    (wanted[start : start + 1000],),
                ).fetchall()
                for block, blob, offset, length in rows:
                    found[bytes(block)] = BlockLocation(bytes(block), bytes(blob), offset, length)
            return found

        if not wanted:
            return {}
        return await self._read(work)

    # -- reach (see relay.registry.sqlite's docstring) -----------------------------------

    async def content_reachable(
        self, content: bytes, *, owners: Collection[str], buckets: Collection[str] = ()
    ) -> bool:
        """Whether blob ``content`` is reachable from a bucket owned by one of ``owners``
        or named in ``buckets``."""
        owner_list, bucket_list = sorted(owners), sorted(buckets)
        readable = "(b.owner = ANY(%(owners)s::text[]) OR b.name = ANY(%(buckets)s::text[]))"
        query = (
            "SELECT EXISTS (SELECT 1 FROM bucket_reach AS r JOIN buckets AS b"
            f" ON b.name = r.bucket WHERE r.content = %(content)s AND {readable})"
            " OR EXISTS (SELECT 1 FROM body_parts AS p JOIN bucket_reach AS r"
            " ON r.content = p.body JOIN buckets AS b ON b.name = r.bucket"
            f" WHERE p.blob = %(content)s AND {readable})"
        )
        parameters = {"content": content, "owners": owner_list, "buckets": bucket_list}

        def work(db: psycopg.Connection[Any]) -> bool:
            row = db.execute(query, parameters).fetchone()
            return row is not None and bool(row[0])

        return await self._read(work)

    async def record_reach(self, bucket: str, reach: Reach) -> None:
        """Record what ``bucket`` reaches outside a commit."""
        await self._write(lambda db: _record_reach(db, bucket, reach))

    async def reach_backfill_pending(self) -> bool:
        def work(db: psycopg.Connection[Any]) -> bool:
            row = db.execute("SELECT value FROM meta WHERE key = 'reach_backfill'").fetchone()
            return row is not None and row[0] == "pending"

        return await self._read(work)

    async def finish_reach_backfill(self) -> None:
        await self._write(lambda db: db.execute("DELETE FROM meta WHERE key = 'reach_backfill'"))

    # -- multipart uploads ---------------------------------------------------------------

    async def create_upload(
        self, upload_id: str, bucket: str, key: str, owner: str, request: bytes
    ) -> UploadRecord:
        created = now_ms()

        def work(db: psycopg.Connection[Any]) -> UploadRecord:
            db.execute(
                "INSERT INTO multipart_uploads (upload_id, bucket, key, owner, created_ms, request)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (upload_id, bucket, key.encode("utf-8"), owner, created, request),
            )
            return UploadRecord(upload_id, bucket, key, owner, created, request)

        return await self._write(work)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        def work(db: psycopg.Connection[Any]) -> UploadRecord | None:
            row = db.execute(
                "SELECT upload_id, bucket, key, owner, created_ms, request"
                " FROM multipart_uploads WHERE upload_id = %s",
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

        def work(db: psycopg.Connection[Any]) -> list[UploadRecord]:
            rows = db.execute(
                "SELECT upload_id, bucket, key, owner, created_ms, request FROM multipart_uploads"
                " WHERE bucket = %s AND (key > %s OR (key = %s AND upload_id > %s))"
                " ORDER BY key, upload_id LIMIT %s",
                (bucket, key, key, after_upload_id, limit),
            ).fetchall()
            return [_upload(row) for row in rows]

        return await self._read(work)

    async def put_part(self, part: PartRecord) -> None:
        def work(db: psycopg.Connection[Any]) -> None:
            # FOR SHARE: an abort or complete on another host waits for this part, then
            # deletes it with the upload (see "Rows are locked in one order").
            if not db.execute(
                "SELECT 1 FROM multipart_uploads WHERE upload_id = %s FOR SHARE",
                (part.upload_id,),
            ).fetchone():
                raise UploadMissing(part.upload_id)
            db.execute(
                "INSERT INTO multipart_parts"
                " (upload_id, part_number, size, etag, created_ms, part)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (upload_id, part_number)"
                " DO UPDATE SET size = EXCLUDED.size, etag = EXCLUDED.etag,"
                " created_ms = EXCLUDED.created_ms, part = EXCLUDED.part",
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
        def work(db: psycopg.Connection[Any]) -> list[PartRecord]:
            rows = db.execute(
                "SELECT upload_id, part_number, size, etag, created_ms, part FROM multipart_parts"
                " WHERE upload_id = %s AND part_number > %s ORDER BY part_number LIMIT %s",
                (upload_id, after_part, limit),
            ).fetchall()
            return [
                PartRecord(upload, number, size, etag, created, bytes(data))
                for upload, number, size, etag, created, data in rows
            ]

        return await self._read(work)

    async def delete_upload(self, upload_id: str) -> bool:
        """Forget an upload and its parts; whether it existed."""

        def work(db: psycopg.Connection[Any]) -> bool:
            # The upload row first: it waits for parts being written (FOR SHARE).
            existed = bool(
                db.execute(
                    "DELETE FROM multipart_uploads WHERE upload_id = %s", (upload_id,)
                ).rowcount
            )
            db.execute("DELETE FROM multipart_parts WHERE upload_id = %s", (upload_id,))
            return existed

        return await self._write(work)

    async def complete_upload(
        self, upload_id: str, parts: str, manifest: bytes, *, forget_before_ms: int
    ) -> None:
        """Forget an upload and its parts and remember what completing it made, in one
        transaction: ``parts`` names the part list completed, ``manifest`` the object.
        Results completed before ``forget_before_ms`` are forgotten."""

        def work(db: psycopg.Connection[Any]) -> None:
            row = db.execute(
                "DELETE FROM multipart_uploads WHERE upload_id = %s RETURNING bucket, key, owner",
                (upload_id,),
            ).fetchone()
            db.execute("DELETE FROM multipart_parts WHERE upload_id = %s", (upload_id,))
            db.execute("DELETE FROM completed_uploads WHERE completed_ms < %s", (forget_before_ms,))
            if row is not None:
                db.execute(
                    "INSERT INTO completed_uploads"
                    " (upload_id, bucket, key, owner, parts, manifest, completed_ms)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (upload_id) DO UPDATE SET"
                    " bucket = EXCLUDED.bucket, key = EXCLUDED.key, owner = EXCLUDED.owner,"
                    " parts = EXCLUDED.parts, manifest = EXCLUDED.manifest,"
                    " completed_ms = EXCLUDED.completed_ms",
                    (upload_id, *row, parts, manifest, now_ms()),
                )

        await self._write(work)

    async def get_completed_upload(self, upload_id: str) -> CompletedUploadRecord | None:
        def work(db: psycopg.Connection[Any]) -> CompletedUploadRecord | None:
            row = db.execute(
                "SELECT upload_id, bucket, key, owner, parts, manifest, completed_ms"
                " FROM completed_uploads WHERE upload_id = %s",
                (upload_id,),
            ).fetchone()
            if row is None:
                return None
            upload, bucket, key, owner, part_list, manifest, completed = row
            return CompletedUploadRecord(
                upload,
                bucket,
                bytes(key).decode("utf-8"),
                owner,
                part_list,
                bytes(manifest),
                completed,
            )

        return await self._read(work)

    # -- location claims -----------------------------------------------------------------

    async def add_claims(self, claims: Sequence[Claim]) -> None:
        """Record claims (idempotent: a claim for the same content and URL is replaced)."""
        # One row per (content, url), the last one given winning, in key order.
        unique = {(c.content, c.url): c for c in claims}
        rows = [(c.content, c.url, c.offset, c.length) for _, c in sorted(unique.items())]

        def work(db: psycopg.Connection[Any]) -> None:
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO claims (content, url, range_offset, range_length)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (content, url) DO UPDATE SET"
                    " range_offset = EXCLUDED.range_offset, range_length = EXCLUDED.range_length",
                    rows,
                )

        if rows:
            await self._write(work)

    # -- garbage collection's reads and writes (see relay.bucket.gc) ----------------------

    async def commit_at(self, bucket: str, version: int) -> CommitRecord | None:
        def work(db: psycopg.Connection[Any]) -> CommitRecord | None:
            row = db.execute(
                "SELECT root, time_ms, car, puts, deletes FROM commits"
                " WHERE bucket = %s AND version = %s",
                (bucket, version),
            ).fetchone()
            if row is None:
                return None
            root, time_ms, car, puts, deletes = row
            return CommitRecord(
                bucket, version, CID(bytes(root)), time_ms, _optional_bytes(car), puts, deletes
            )

        return await self._read(work)

    async def commits_since(self, since_ms: int) -> list[CommitRecord]:
        """Every bucket's commits made at or after ``since_ms``."""

        def work(db: psycopg.Connection[Any]) -> list[CommitRecord]:
            rows = db.execute(
                "SELECT bucket, version, root, time_ms, car, puts, deletes FROM commits"
                " WHERE time_ms >= %s",
                (since_ms,),
            ).fetchall()
            return [
                CommitRecord(b, v, CID(bytes(r)), t, _optional_bytes(c), p, d)
                for b, v, r, t, c, p, d in rows
            ]

        return await self._read(work)

    async def set_pin(self, name: str, bucket: str, root: CID | None) -> None:
        """Pin ``root`` under ``name`` (replacing what that name pinned); None unpins."""
        created = now_ms()

        def work(db: psycopg.Connection[Any]) -> None:
            if root is None:
                db.execute("DELETE FROM pins WHERE name = %s", (name,))
            else:
                db.execute(
                    "INSERT INTO pins (name, bucket, root, created_ms) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET bucket = EXCLUDED.bucket,"
                    " root = EXCLUDED.root, created_ms = EXCLUDED.created_ms",
                    (name, bucket, root.bytes, created),
                )

        await self._write(work)

    async def list_pins(self) -> list[PinRecord]:
        def work(db: psycopg.Connection[Any]) -> list[PinRecord]:
            rows = db.execute(
                "SELECT name, bucket, root, created_ms FROM pins ORDER BY name"
            ).fetchall()
            return [PinRecord(n, b, CID(bytes(r)), c) for n, b, r, c in rows]

        return await self._read(work)

    async def forget_blobs(self, blobs: Collection[bytes]) -> None:
        """Forget every row naming these (deleted) blobs, in one transaction (as
        ``SqliteRegistry.forget_blobs``: block locations, claims, reach)."""
        wanted = sorted(blobs)

        def work(db: psycopg.Connection[Any]) -> None:
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                inside = "SELECT block FROM block_locations WHERE blob = ANY(%s)"
                db.execute(f"DELETE FROM bucket_reach WHERE content IN ({inside})", (batch,))
                db.execute(f"DELETE FROM body_parts WHERE body IN ({inside})", (batch,))
                db.execute("DELETE FROM block_locations WHERE blob = ANY(%s)", (batch,))
                db.execute("DELETE FROM bucket_reach WHERE content = ANY(%s)", (batch,))
                db.execute("DELETE FROM body_parts WHERE blob = ANY(%s)", (batch,))
                db.execute("DELETE FROM claims WHERE content = ANY(%s)", (batch,))

        await self._write(work)

    async def claims_for(self, content: bytes) -> list[Claim]:
        """Every claim for a multihash, in a stable order (by URL)."""

        def work(db: psycopg.Connection[Any]) -> list[Claim]:
            rows = db.execute(
                "SELECT url, range_offset, range_length FROM claims WHERE content = %s"
                " ORDER BY url",
                (content,),
            ).fetchall()
            return [Claim(content, url, offset, length) for url, offset, length in rows]

        return await self._read(work)

    async def all_claims(
        self, *, after: tuple[bytes, str] = (b"", ""), limit: int = 10_000
    ) -> list[Claim]:
        """Claims in (content, url) order after ``after``: page through them all."""

        def work(db: psycopg.Connection[Any]) -> list[Claim]:
            rows = db.execute(
                "SELECT content, url, range_offset, range_length FROM claims"
                " WHERE content > %s OR (content = %s AND url > %s)"
                " ORDER BY content, url LIMIT %s",
                (after[0], after[0], after[1], limit),
            ).fetchall()
            return [
                Claim(bytes(content), url, offset, length) for content, url, offset, length in rows
            ]

        return await self._read(work)

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(
            lambda: self._pool.close(timeout=self.config.connect_timeout_seconds)
        )


def _open_pool(config: RegistryConfig) -> ConnectionPool[Any]:
    """A pool with a working connection and the schema migrated, or ``RegistryUnavailable``."""
    pool: ConnectionPool[Any] = ConnectionPool(
        config.url,
        min_size=1,
        max_size=config.pool_size,
        kwargs=_connection_settings(config),
        # A connection broken while it sat in the pool (PostgreSQL restarted) is found
        # before it is lent, and replaced: the restart costs no request an error.
        check=ConnectionPool.check_connection,
        timeout=config.connect_timeout_seconds,
        name="relay-registry",
        open=False,
    )
    try:
        # One connection of its own first: its failure says why (a wrong password, no
        # such database), where the pool's says only that it timed out.
        with psycopg.connect(config.url, **_connection_settings(config)) as db:
            _migrate(db)
        pool.open(wait=True, timeout=config.connect_timeout_seconds)
    except psycopg.Error as exc:
        # Unavailable (down, refused, a wrong password) or unusable (a malformed URL):
        # either way one line that names the registry without its password.
        pool.close(timeout=0)
        text = scrub(" ".join(str(exc).split()) or type(exc).__name__, config.url)
        failure = RegistryUnavailable if isinstance(exc, _UNAVAILABLE) else RegistryError
        raise failure(f"cannot open the registry at {redact_url(config.url)}: {text}") from None
    except BaseException:
        pool.close(timeout=0)
        raise
    return pool


@asynccontextmanager
async def open_postgres_registry(config: RegistryConfig) -> AsyncIterator[PostgresRegistry]:
    """The registry at ``config.url``, its schema brought up to date; closed on exit."""
    pool = await trio.to_thread.run_sync(_open_pool, config)
    registry = PostgresRegistry(config, pool)
    try:
        yield registry
    finally:
        with trio.CancelScope(shield=True):
            await registry.aclose()
