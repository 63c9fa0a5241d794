"""The storage engine: buckets of objects, every byte content-addressed and verified.

This is the API the S3 front door (and anyone embedding relay) calls. It knows nothing of
HTTP. A put streams the body through the chunker into the blob store, builds the UnixFS
DAG over the chunks (its interior nodes go out as one *index CAR*), makes the object's
manifest and hands it to the bucket's writer (``relay.bucket.writer``), which commits it
with whatever else was queued. A read resolves the key in the last committed MST root and
streams verified chunks. Every bucket's root at every version stays in the registry's
commit log, so any past state can be read or exported.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import trio

from relay.bucket.blocks import (
    DEFAULT_MANIFEST_CACHE_BYTES,
    DEFAULT_NODE_CACHE_BYTES,
    DEFAULT_SUMMARY_CACHE_BYTES,
    BlockReader,
)
from relay.bucket.errors import (
    BucketAlreadyExists,
    InvalidKey,
    NoSuchBucket,
    NoSuchKey,
    VersionNotRetained,
)
from relay.bucket.heads import BucketHeads
from relay.bucket.inflight import InFlightWrites, in_flight_write
from relay.bucket.listing import Listing, ListingStatistics, Page
from relay.bucket.manifest import DEFAULT_CONTENT_TYPE, Manifest
from relay.bucket.reach import backfill_reach, body_parts
from relay.bucket.reader import (
    DEFAULT_PREFETCH,
    ObjectReads,
    ObjectStream,
    ReadAheadBudget,
    ReadPlan,
)
from relay.bucket.retention import (
    DEFAULT_HISTORY_RETENTION_SECONDS,
    is_retained,
    retention_cutoff_ms,
)
from relay.bucket.writer import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_BATCH,
    DropBucket,
    Mutation,
    Precondition,
    Update,
    WriterStatistics,
)
from relay.chunker import (
    Checksum,
    ChunkBuffers,
    ChunkedBody,
    ChunkerConfig,
    Leaf,
    chunk_into_store,
)
from relay.ipld import multihash
from relay.ipld.car import CarBuilder
from relay.ipld.cid import CID
from relay.mst import EMPTY_NODE
from relay.mst import get as mst_get
from relay.registry.base import (
    BlockLocation,
    BucketExists,
    BucketRecord,
    CommitRecord,
    Registry,
    now_ms,
)
from relay.store.base import BlobStore
from relay.unixfs import FileBuilder

MAX_KEY_BYTES: Final = 1024
DEFAULT_UNIXFS_WIDTH: Final = 1024
# A single PUT may carry at most 5 GiB, as in S3.
MAX_SINGLE_PUT_BYTES: Final = 5 << 30


# Enough for one download to read DEFAULT_PREFETCH 1 MiB chunks ahead.
DEFAULT_READ_AHEAD_BYTES: Final = 4 << 20

# How long a bucket's settings (policy, ACL...) read from the registry answer requests.
# Every request is decided from them, and a registry read per request halves the rate of
# small requests; a write through this engine replaces its copy at once, so only a change
# made by another process serving the same registry can take this long to be seen (S3's
# bucket configurations are eventually consistent too).
BUCKET_SETTINGS_TTL_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    chunker: ChunkerConfig = field(default_factory=ChunkerConfig)
    unixfs_width: int = DEFAULT_UNIXFS_WIDTH
    max_batch: int = DEFAULT_MAX_BATCH
    writer_idle_seconds: float = DEFAULT_IDLE_SECONDS
    read_prefetch: int = DEFAULT_PREFETCH
    # Chunks all reads together may hold beyond the one each waits for (see reader.py):
    # a lone download still reads ``read_prefetch`` ahead; many share this much.
    read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES
    node_cache_bytes: int = DEFAULT_NODE_CACHE_BYTES
    manifest_cache_bytes: int = DEFAULT_MANIFEST_CACHE_BYTES
    summary_cache_bytes: int = DEFAULT_SUMMARY_CACHE_BYTES
    # A completed multipart object's BLAKE3 (x-cid) means reading it back once: ~1 s per
    # GiB here. Above this size the digest is left out rather than made slow.
    multipart_cid_budget_bytes: int = 1 << 30
    # Past versions older than this (and not pinned) are not read (relay.bucket.retention).
    history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS


@dataclass(frozen=True, slots=True)
class StoredBody:
    """A body in the blob store with its UnixFS DAG built: what a manifest points at."""

    root: CID
    size: int
    chunked: ChunkedBody
    index_locations: tuple[BlockLocation, ...]


@dataclass(frozen=True, slots=True)
class ListEntry:
    key: str
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class ListPage:
    entries: list[ListEntry]
    is_truncated: bool


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    buckets_loaded: int
    writers_running: int
    writers: dict[str, WriterStatistics] = field(default_factory=dict)
    # Every commit since the engine opened, across writers that came and retired.
    commit_batches: int = 0
    commit_mutations: int = 0
    commit_seconds: float = 0.0
    # Batches applied again because another process committed the bucket first.
    commit_rebases: int = 0
    # Compare-and-swaps lost to another process (each then committed under the lock).
    commit_conflicts: int = 0


def key_bytes(key: str) -> bytes:
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey("object keys must be valid UTF-8") from None
    if not 1 <= len(raw) <= MAX_KEY_BYTES:
        raise InvalidKey(f"object keys are 1 to {MAX_KEY_BYTES} bytes of UTF-8")
    return raw


class Engine:
    def __init__(
        self,
        store: BlobStore,
        registry: Registry,
        nursery: trio.Nursery,
        config: EngineConfig = EngineConfig(),
    ) -> None:
        # Writes in flight, which garbage collection must see (relay.bucket.inflight).
        self.in_flight = InFlightWrites()
        store = self.in_flight.guard(store)
        self.store = store
        self.registry = registry
        self.config = config
        # The memory budget every upload through this engine shares.
        self.buffers = ChunkBuffers(config.chunker.chunk_size_bytes, config.chunker.pooled_buffers)
        self._nursery = nursery
        # The read-ahead memory every download and read-back through this engine shares.
        self.read_ahead_budget = ReadAheadBudget(
            config.read_ahead_bytes // config.chunker.chunk_size_bytes
        )
        self.blocks = BlockReader(
            store,
            registry,
            node_cache_bytes=config.node_cache_bytes,
            manifest_cache_bytes=config.manifest_cache_bytes,
            summary_cache_bytes=config.summary_cache_bytes,
        )
        self._reads = ObjectReads(
            store, self.blocks, self.read_ahead_budget, prefetch=config.read_prefetch
        )
        self._listing = Listing(self.blocks, nursery)
        self._heads = BucketHeads(
            store,
            registry,
            self.blocks,
            nursery,
            max_batch=config.max_batch,
            idle_seconds=config.writer_idle_seconds,
        )
        # bucket -> (when read, its settings); see BUCKET_SETTINGS_TTL_SECONDS
        self._settings: dict[str, tuple[float, dict[str, bytes]]] = {}

    # -- buckets -------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str = "") -> BucketRecord:
        try:
            return await self.registry.create_bucket(name, owner, EMPTY_NODE.cid)
        except BucketExists as exists:
            raise BucketAlreadyExists(name, owned_by_caller=exists.owner == owner) from None

    async def head_bucket(self, name: str) -> BucketRecord:
        return (await self._heads.current(name)).record

    async def list_buckets(self) -> list[BucketRecord]:
        return await self.registry.list_buckets()

    async def delete_bucket(self, name: str) -> None:
        drop = DropBucket()
        await self._heads.submit(name, drop)
        await drop.wait()
        self._heads.forget(name)
        self._settings.pop(name, None)

    async def bucket_settings(self, name: str) -> dict[str, bytes]:
        """The bucket's access and browser settings (policy, ACL, CORS...) by name, at
        most BUCKET_SETTINGS_TTL_SECONDS old (never older than this engine's own writes).
        The caller must not change the dict."""
        cached = self._settings.get(name)
        now = trio.current_time()
        if cached is not None and now - cached[0] < BUCKET_SETTINGS_TTL_SECONDS:
            return cached[1]
        settings = await self.registry.get_bucket_settings(name)
        self._settings[name] = (now, settings)
        return settings

    async def put_bucket_setting(self, name: str, setting: str, value: bytes | None) -> None:
        """Store (None: delete) one of the bucket's settings."""
        self._settings.pop(name, None)
        try:
            await self.registry.put_bucket_setting(name, setting, value)
        finally:
            # A read racing the write may have cached the old value: forget it again.
            self._settings.pop(name, None)

    async def bucket_log(self, name: str, *, limit: int | None = None) -> list[CommitRecord]:
        await self._heads.current(name)
        return await self.registry.commit_log(name, limit=limit)

    async def bucket_root(self, name: str, version: int | None = None) -> CID:
        state = await self._heads.current(name)
        if version is None:
            return state.root
        commit = await self.registry.commit_at(name, version)
        if commit is None:
            raise NoSuchBucket(f"{name}@{version}")
        retention = self.config.history_retention_seconds
        if not is_retained(
            commit,
            current_version=state.version,
            cutoff_ms=retention_cutoff_ms(now_ms(), retention),
            pinned={pin.root for pin in await self.registry.list_pins()},
        ):
            raise VersionNotRetained(name, version, retention)
        return commit.root

    # -- objects: writing ----------------------------------------------------------------

    async def store_body(
        self,
        body: AsyncIterable[bytes],
        *,
        checksums: frozenset[Checksum] = frozenset(),
        max_body_bytes: int | None = MAX_SINGLE_PUT_BYTES,
        size_hint: int | None = None,
        build_index: bool = True,
    ) -> StoredBody:
        """Chunk ``body`` into the store and write its UnixFS index CAR (not committed).

        ``build_index=False`` (a multipart part) stores only the chunks and skips the
        body's BLAKE3: the DAG and the digest are made over all the parts at Complete.
        """
        chunked = await chunk_into_store(
            body,
            self.store,
            self.config.chunker,
            checksums=checksums,
            max_body_bytes=max_body_bytes,
            expected_size=size_hint,
            buffers=self.buffers,
            whole_blake3=build_index,
        )
        if not build_index:
            return StoredBody(chunked.leaves[0].cid, chunked.size, chunked, ())
        root, locations = await self.store_leaves(chunked.leaves)
        return StoredBody(root, chunked.size, chunked, locations)

    async def store_leaves(self, leaves: Sequence[Leaf]) -> tuple[CID, tuple[BlockLocation, ...]]:
        """Build the UnixFS DAG over ``leaves``; store its interior nodes as an index CAR."""
        builder = FileBuilder(self.config.unixfs_width)
        interior = []
        for leaf in leaves:
            interior.extend(builder.add_leaf(leaf.cid, leaf.size))
        file_root = builder.finish()
        interior.extend(file_root.blocks)
        if not interior:
            return file_root.cid, ()
        car = CarBuilder([file_root.cid])
        for block in interior:
            car.add(block.cid, block.data)
        car_bytes = car.to_bytes()
        car_mh = multihash.sha2_256(car_bytes)
        await self.store.put(car_mh, car_bytes)
        locations = tuple(
            BlockLocation(loc.cid.multihash, car_mh, loc.offset, loc.length)
            for loc in car.locations
        )
        return file_root.cid, locations

    @in_flight_write
    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        checksums: frozenset[Checksum] = frozenset(),
        keep_checksums: frozenset[Checksum] | None = None,
        verify: Callable[[ChunkedBody], None] | None = None,
        precondition: Precondition | None = None,
        max_body_bytes: int | None = MAX_SINGLE_PUT_BYTES,
        size_hint: int | None = None,
        acl: tuple[tuple[str, str], ...] | None = None,
    ) -> Manifest:
        """Store ``body`` under ``key`` and return its manifest once committed.

        ``checksums`` are computed over the body; the manifest keeps ``keep_checksums`` of
        them (default: all), so a digest computed only to check a signature is not stored.

        ``verify`` sees the digests before anything is committed (Content-MD5, a client's
        checksum); raising there, or in ``precondition``, commits nothing.
        """
        key_bytes(key)  # refuse a bad key or a missing bucket before reading any body
        await self._heads.current(bucket)
        stored = await self.store_body(
            body, checksums=checksums, max_body_bytes=max_body_bytes, size_hint=size_hint
        )
        if verify is not None:
            verify(stored.chunked)
        manifest = Manifest(
            key=key,
            size=stored.size,
            body=stored.root,
            chunk_size=self.config.chunker.chunk_size_bytes,
            etag=stored.chunked.md5.hex(),
            last_modified_ms=now_ms(),
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            metadata=dict(metadata or {}),
            headers=dict(headers or {}),
            checksums={
                kind.value: digest
                for kind, digest in stored.chunked.checksums.items()
                if keep_checksums is None or kind in keep_checksums
            },
            blake3=stored.chunked.blake3,
            tags=dict(tags or {}),
            acl=acl,
        )
        await self.commit_manifest(
            bucket,
            manifest,
            stored.index_locations,
            precondition,
            body_parts=body_parts(stored.chunked.leaves, stored.index_locations),
        )
        return manifest

    async def commit_manifest(
        self,
        bucket: str,
        manifest: Manifest,
        locations: Sequence[BlockLocation] = (),
        precondition: Precondition | None = None,
        *,
        body_parts: Sequence[bytes] = (),
    ) -> int:
        """Make ``manifest`` the object at its key; return the bucket version that holds it.

        ``body_parts``: the blobs under a body this call stored (``reach.body_parts``);
        a body that is already committed somewhere (a copy) needs none."""
        block = manifest.to_block()
        mutation = Mutation(
            key_bytes(manifest.key),
            manifest,
            block,
            tuple(locations),
            precondition,
            body_parts=tuple(body_parts),
        )
        await self._heads.submit(bucket, mutation)
        return await mutation.wait()

    async def update_object(self, bucket: str, key: str, change: Update) -> Manifest:
        """Replace ``key``'s manifest with ``change(current)``, decided by the bucket's
        writer in order with every other write to the key (no lost update, no retry).
        ``change`` raises an ``EngineError`` (such as ``NoSuchKey``) to refuse."""
        mutation = Mutation(key_bytes(key), None, update=change)
        await self._heads.submit(bucket, mutation)
        await mutation.wait()
        assert mutation.manifest is not None
        return mutation.manifest

    async def delete_object(
        self, bucket: str, key: str, *, precondition: Precondition | None = None
    ) -> int:
        """Delete ``key`` (deleting an absent key succeeds, as in S3)."""
        mutation = Mutation(key_bytes(key), None, precondition=precondition)
        await self._heads.submit(bucket, mutation)
        return await mutation.wait()

    async def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[BaseException | None]:
        """Delete many keys in one batch; one result (None or the error) per key."""
        await self._heads.current(bucket)
        mutations: list[Mutation | None] = []
        results: list[BaseException | None] = []
        for key in keys:
            try:
                mutations.append(Mutation(key_bytes(key), None))
                results.append(None)
            except InvalidKey as exc:
                mutations.append(None)
                results.append(exc)
        for mutation in mutations:
            if mutation is not None:
                await self._heads.submit(bucket, mutation)
        for index, mutation in enumerate(mutations):
            if mutation is not None:
                try:
                    await mutation.wait()
                except Exception as exc:
                    results[index] = exc
        return results

    # -- objects: reading ----------------------------------------------------------------

    async def _manifest_cid(self, bucket: str, key: str, root: CID | None = None) -> CID | None:
        raw_key = key_bytes(key)
        root = root or (await self._heads.current(bucket)).root
        return await self.blocks.run_with_nodes(lambda load: mst_get(root, raw_key, load))

    async def head_object(self, bucket: str, key: str, *, version: int | None = None) -> Manifest:
        root = await self.bucket_root(bucket, version)
        cid = await self._manifest_cid(bucket, key, root)
        if cid is None:
            raise NoSuchKey(bucket, key)
        return await self.blocks.manifest(cid)

    async def plan_read(
        self,
        bucket: str,
        key: str,
        *,
        first: int | None = None,
        last: int | None = None,
        suffix: int | None = None,
        manifest: Manifest | None = None,
    ) -> ReadPlan:
        """Resolve ``key`` and an HTTP-style byte range (``first``-``last`` inclusive,
        open-ended, or the last ``suffix`` bytes) into the chunks to send. Every error a
        client should hear about (no key, unsatisfiable range) happens here, before a byte
        of the body goes out."""
        if manifest is None:
            manifest = await self.head_object(bucket, key)
        return await self._reads.plan(manifest, first=first, last=last, suffix=suffix)

    async def fetch_first_chunk(self, plan: ReadPlan) -> ReadPlan:
        """``plan`` with its first chunk fetched and verified (see ``ObjectReads``)."""
        return await self._reads.fetch_first_chunk(plan)

    async def write_object(
        self, plan: ReadPlan, write: Callable[[bytes], Awaitable[object]]
    ) -> None:
        """Send the planned bytes to ``write`` in order, each chunk verified first."""
        await self._reads.write(plan, write)

    @asynccontextmanager
    async def open_object(
        self,
        bucket: str,
        key: str,
        *,
        first: int | None = None,
        last: int | None = None,
        suffix: int | None = None,
        manifest: Manifest | None = None,
    ) -> AsyncIterator[ObjectStream]:
        """``plan_read`` and a channel of the bytes, for callers that pull (tests, export).
        Enter and leave it in the same task, as any trio nursery."""
        plan = await self.plan_read(
            bucket, key, first=first, last=last, suffix=suffix, manifest=manifest
        )
        async with self._reads.stream(plan.spans) as chunks:
            yield ObjectStream(plan.manifest, plan.start, plan.end, chunks)

    async def read_object(self, bucket: str, key: str) -> bytes:
        """The whole object in memory: a convenience for tests and small objects."""
        parts = []
        async with self.open_object(bucket, key) as stream:
            async for chunk in stream.chunks:
                parts.append(chunk)
        return b"".join(parts)

    async def list_keys(
        self,
        bucket: str,
        *,
        prefix: str = "",
        start_after: str | bytes = "",
        limit: int = 1000,
        root: CID | None = None,
    ) -> tuple[list[tuple[str, CID]], bool]:
        """Keys (with their manifest CIDs) in order: those starting with ``prefix`` and
        greater than ``start_after`` (raw bytes allowed, see ``Listing.keys``); at most
        ``limit``, and whether more follow. ``root``: a past root instead of the head."""
        root = root or (await self._heads.current(bucket)).root
        after = start_after if isinstance(start_after, bytes) else start_after.encode("utf-8")
        return await self._listing.keys(root, prefix=prefix, after=after, limit=limit)

    async def list_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        cursor: bytes = b"",
        max_keys: int = 1000,
    ) -> Page:
        """One page of a listing (keys with their summaries, common prefixes); the next
        page starts at its ``cursor`` (``resume_after`` turns a key marker into one)."""
        root = (await self._heads.current(bucket)).root
        return await self._listing.page(
            bucket, root, prefix=prefix, delimiter=delimiter, cursor=cursor, max_keys=max_keys
        )

    async def list_objects(
        self, bucket: str, *, prefix: str = "", start_after: str = "", limit: int = 1000
    ) -> ListPage:
        """Keys with their whole manifests (the CLI's ``ls``, tests)."""
        keys, more = await self.list_keys(
            bucket, prefix=prefix, start_after=start_after, limit=limit
        )
        manifests = await self.manifests([cid for _, cid in keys])
        entries = [ListEntry(key, m) for (key, _), m in zip(keys, manifests, strict=True)]
        return ListPage(entries, more)

    async def manifests(self, cids: Sequence[CID]) -> list[Manifest]:
        return await self.blocks.manifests(cids)

    def listing_statistics(self) -> ListingStatistics:
        return self._listing.statistics()

    def statistics(self) -> EngineStatistics:
        writers = self._heads.writer_statistics()
        totals = self._heads.totals
        return EngineStatistics(
            self._heads.loaded(),
            len(writers),
            writers,
            totals.batches,
            totals.mutations,
            totals.seconds,
            totals.rebases,
            totals.conflicts,
        )


@asynccontextmanager
async def open_engine(
    store: BlobStore, registry: Registry, config: EngineConfig = EngineConfig()
) -> AsyncIterator[Engine]:
    """Run an engine: its bucket writers live in a nursery this context owns.

    Over a registry made before the reach tables existed, the objects already stored are
    recorded there first, once (``relay.bucket.reach.backfill_reach``)."""
    async with trio.open_nursery() as nursery:
        engine = Engine(store, registry, nursery, config)
        try:
            if await registry.reach_backfill_pending():
                await backfill_reach(engine)
            yield engine
        finally:
            nursery.cancel_scope.cancel()
