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
from dataclasses import dataclass, field, replace
from functools import partial
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
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    VersionNotRetained,
)
from relay.bucket.inflight import InFlightWrites, in_flight_write
from relay.bucket.manifest import DEFAULT_CONTENT_TYPE, Manifest, ObjectSummary
from relay.bucket.reach import backfill_reach, body_parts
from relay.bucket.reader import DEFAULT_PREFETCH, ReadAheadBudget, fetch_span, serve_spans
from relay.bucket.retention import (
    DEFAULT_HISTORY_RETENTION_SECONDS,
    is_retained,
    retention_cutoff_ms,
)
from relay.bucket.writer import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_BATCH,
    BucketWriter,
    CommitTotals,
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
from relay.errorgroups import single_error
from relay.ipld import multihash
from relay.ipld.car import CarBuilder
from relay.ipld.cid import CID
from relay.mst import EMPTY_NODE
from relay.mst import get as mst_get
from relay.mst import walk as mst_walk
from relay.registry.base import (
    BlockLocation,
    BucketExists,
    BucketRecord,
    CommitRecord,
    Registry,
    now_ms,
)
from relay.store.base import BlobStore
from relay.unixfs import FileBuilder, LeafSpan, leaves_for_range

MAX_KEY_BYTES: Final = 1024
DEFAULT_UNIXFS_WIDTH: Final = 1024
# A single PUT may carry at most 5 GiB, as in S3.
MAX_SINGLE_PUT_BYTES: Final = 5 << 30


# Enough for one download to read DEFAULT_PREFETCH 1 MiB chunks ahead.
DEFAULT_READ_AHEAD_BYTES: Final = 4 << 20

# A listing request waits at most this long for the read-ahead of its own page.
READ_AHEAD_WAIT_SECONDS: Final = 5.0


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
class ReadPlan:
    manifest: Manifest
    start: int
    end: int  # exclusive
    spans: list[LeafSpan]
    # The bytes of spans[0], fetched and verified ahead (``fetch_first_chunk``).
    first_chunk: bytes | None = None

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ObjectStream:
    manifest: Manifest
    start: int
    end: int  # exclusive
    chunks: trio.MemoryReceiveChannel[bytes]


@dataclass
class _BucketState:
    record: BucketRecord
    root: CID
    version: int
    writer: BucketWriter | None = None
    writer_ready: trio.Event | None = None


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    buckets_loaded: int
    writers_running: int
    writers: dict[str, WriterStatistics] = field(default_factory=dict)
    # Every commit since the engine opened, across writers that came and retired.
    commit_batches: int = 0
    commit_mutations: int = 0
    commit_seconds: float = 0.0


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
        self._buckets: dict[str, _BucketState] = {}
        self._commit_totals = CommitTotals()
        self._loading: dict[str, trio.Event] = {}
        # bucket -> (the cursor of the page being read ahead, set when it is warm)
        self._read_aheads: dict[str, tuple[bytes, trio.Event]] = {}

    # -- buckets -------------------------------------------------------------------------

    async def _state(self, bucket: str) -> _BucketState:
        state = self._buckets.get(bucket)
        if state is not None:
            return state
        # One registry read per bucket, however many requests arrive for it at once.
        loading = self._loading.get(bucket)
        if loading is not None:
            await loading.wait()
            return await self._state(bucket)
        self._loading[bucket] = loading = trio.Event()
        try:
            record = await self.registry.get_bucket(bucket)
            if record is None:
                raise NoSuchBucket(bucket)
            state = self._buckets[bucket] = _BucketState(record, record.root, record.version)
            return state
        finally:
            del self._loading[bucket]
            loading.set()

    async def create_bucket(self, name: str, owner: str = "") -> BucketRecord:
        try:
            return await self.registry.create_bucket(name, owner, EMPTY_NODE.cid)
        except BucketExists as exists:
            raise BucketAlreadyExists(name, owned_by_caller=exists.owner == owner) from None

    async def head_bucket(self, name: str) -> BucketRecord:
        return (await self._state(name)).record

    async def list_buckets(self) -> list[BucketRecord]:
        return await self.registry.list_buckets()

    async def delete_bucket(self, name: str) -> None:
        drop = DropBucket()
        await self._submit(name, drop)
        await drop.wait()
        self._buckets.pop(name, None)

    async def bucket_log(self, name: str, *, limit: int | None = None) -> list[CommitRecord]:
        await self._state(name)
        return await self.registry.commit_log(name, limit=limit)

    async def bucket_root(self, name: str, version: int | None = None) -> CID:
        state = await self._state(name)
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

    # -- the writer ----------------------------------------------------------------------

    def _on_commit(self, bucket: str, root: CID, version: int) -> None:
        state = self._buckets.get(bucket)
        if state is not None:
            state.root = root
            state.version = version

    def _on_retire(self, writer: BucketWriter) -> None:
        state = self._buckets.get(writer.name)
        if state is not None and state.writer is writer:
            state.writer = None

    async def _writer(self, bucket: str) -> BucketWriter:
        state = await self._state(bucket)
        while state.writer is None:
            if state.writer_ready is not None:
                await state.writer_ready.wait()
                continue
            state.writer_ready = trio.Event()
            try:
                writer = BucketWriter(
                    bucket,
                    root=state.root,
                    version=state.version,
                    store=self.store,
                    registry=self.registry,
                    blocks=self.blocks,
                    on_commit=self._on_commit,
                    on_retire=self._on_retire,
                    max_batch=self.config.max_batch,
                    idle_seconds=self.config.writer_idle_seconds,
                    totals=self._commit_totals,
                )
                await self._nursery.start(writer.serve)
                state.writer = writer
            finally:
                state.writer_ready.set()
                state.writer_ready = None
        return state.writer

    async def _submit(self, bucket: str, item: Mutation | DropBucket) -> None:
        while True:
            writer = await self._writer(bucket)
            try:
                await writer.submit(item)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # That writer retired (or its bucket was deleted) as we reached it.
                self._on_retire(writer)
                if bucket not in self._buckets:
                    raise NoSuchBucket(bucket) from None

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
    ) -> Manifest:
        """Store ``body`` under ``key`` and return its manifest once committed.

        ``checksums`` are computed over the body; the manifest keeps ``keep_checksums`` of
        them (default: all), so a digest computed only to check a signature is not stored.

        ``verify`` sees the digests before anything is committed (Content-MD5, a client's
        checksum); raising there, or in ``precondition``, commits nothing.
        """
        key_bytes(key)  # refuse a bad key or a missing bucket before reading any body
        await self._state(bucket)
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
        await self._submit(bucket, mutation)
        return await mutation.wait()

    async def update_object(self, bucket: str, key: str, change: Update) -> Manifest:
        """Replace ``key``'s manifest with ``change(current)``, decided by the bucket's
        writer in order with every other write to the key (no lost update, no retry).
        ``change`` raises an ``EngineError`` (such as ``NoSuchKey``) to refuse."""
        mutation = Mutation(key_bytes(key), None, update=change)
        await self._submit(bucket, mutation)
        await mutation.wait()
        assert mutation.manifest is not None
        return mutation.manifest

    async def delete_object(
        self, bucket: str, key: str, *, precondition: Precondition | None = None
    ) -> int:
        """Delete ``key`` (deleting an absent key succeeds, as in S3)."""
        mutation = Mutation(key_bytes(key), None, precondition=precondition)
        await self._submit(bucket, mutation)
        return await mutation.wait()

    async def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[BaseException | None]:
        """Delete many keys in one batch; one result (None or the error) per key."""
        await self._state(bucket)
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
                await self._submit(bucket, mutation)
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
        root = root or (await self._state(bucket)).root
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
        start, end = resolve_range(manifest.size, first, last, suffix)
        spans = await self.blocks.run_with_file_nodes(
            lambda load: list(
                leaves_for_range(manifest.body, start, end - start, load, file_size=manifest.size)
            )
        )
        return ReadPlan(manifest, start, end, spans)

    async def fetch_first_chunk(self, plan: ReadPlan) -> ReadPlan:
        """``plan`` with its first chunk fetched and verified, so that a missing or corrupt
        first block (or an unreachable store) raises here, before a status line is sent.
        ``write_object`` then sends these bytes rather than fetching them again."""
        if not plan.spans or plan.first_chunk is not None:
            await trio.lowlevel.checkpoint()
            return plan
        return replace(plan, first_chunk=await fetch_span(self.store, plan.spans[0]))

    async def write_object(
        self, plan: ReadPlan, write: Callable[[bytes], Awaitable[object]]
    ) -> None:
        """Send the planned bytes to ``write`` in order, each chunk verified first.

        The prefetching tasks live inside this call, so the caller's task tree stays
        properly nested however it streams (an HTTP response body calls this)."""
        async with self._stream(plan.spans, plan.first_chunk) as chunks:
            async for chunk in chunks:
                await write(chunk)

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
        async with self._stream(plan.spans) as chunks:
            yield ObjectStream(plan.manifest, plan.start, plan.end, chunks)

    @asynccontextmanager
    async def _stream(
        self, spans: Sequence[LeafSpan], first: bytes | None = None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        """The chunks of ``spans`` through a one-slot channel, fetched ahead by a nursery
        that lives exactly as long as this context."""
        send, receive = trio.open_memory_channel[bytes](1)
        with single_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        serve_spans, self.store, spans, send,
                        prefetch=self.config.read_prefetch, budget=self.read_ahead_budget,
                        first=first,
                    )
                )  # fmt: skip
                async with receive:
                    yield receive
                nursery.cancel_scope.cancel()

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
        greater than ``start_after``; at most ``limit``, and whether more follow.

        ``start_after`` may be raw bytes: ``b"dir/\xff"`` is past every UTF-8 key under
        ``dir/`` (0xff never occurs in UTF-8), which is how a listing skips a common prefix.
        """
        root = root or (await self._state(bucket)).root
        raw_prefix = prefix.encode("utf-8")
        after = start_after if isinstance(start_after, bytes) else start_after.encode("utf-8")
        cursor, exclusive = (after, True) if after >= raw_prefix else (raw_prefix, False)
        found: list[tuple[bytes, CID]] = []
        more = False

        def collect(load: Callable[[CID], object]) -> None:
            nonlocal cursor, exclusive, more
            for raw_key, value in mst_walk(root, load, cursor, after=exclusive):  # type: ignore[arg-type]
                if not raw_key.startswith(raw_prefix):
                    return
                if len(found) == limit:
                    more = True
                    return
                found.append((raw_key, value))
                cursor, exclusive = raw_key, True

        await self.blocks.run_with_nodes(collect, walk=(root, lambda: cursor))
        return [(k.decode("utf-8"), v) for k, v in found], more

    async def list_objects(
        self, bucket: str, *, prefix: str = "", start_after: str = "", limit: int = 1000
    ) -> ListPage:
        keys, more = await self.list_keys(
            bucket, prefix=prefix, start_after=start_after, limit=limit
        )
        manifests = await self.manifests([cid for _, cid in keys])
        entries = [ListEntry(key, m) for (key, _), m in zip(keys, manifests, strict=True)]
        return ListPage(entries, more)

    async def manifests(self, cids: Sequence[CID]) -> list[Manifest]:
        return await self.blocks.manifests(cids)

    async def summaries(self, cids: Sequence[CID]) -> list[ObjectSummary]:
        """What a listing shows of each object, from a cache of its own (see BlockReader)."""
        return await self.blocks.summaries(cids)

    def read_ahead(self, bucket: str, prefix: str, after: bytes, limit: int) -> None:
        """Warm the caches for the listing page after ``after``, in the background.

        A client paging through a bucket asks for that page next; its nodes and manifests
        are fetched while the client reads this one (one read-ahead per bucket at a time;
        a failure is left for the real request to meet).
        """
        if bucket in self._read_aheads:
            return
        done = trio.Event()
        self._read_aheads[bucket] = (after, done)

        async def warm() -> None:
            try:
                keys, _ = await self.list_keys(
                    bucket, prefix=prefix, start_after=after, limit=limit
                )
                await self.summaries([cid for _, cid in keys])
            except Exception:
                pass
            finally:
                del self._read_aheads[bucket]
                done.set()

        self._nursery.start_soon(warm)

    async def wait_for_read_ahead(self, bucket: str, after: bytes) -> None:
        """If the page after ``after`` is being read ahead, wait for it rather than fetch
        the same blocks twice."""
        reading = self._read_aheads.get(bucket)
        if reading is not None and reading[0] == after:
            with trio.move_on_after(READ_AHEAD_WAIT_SECONDS):
                await reading[1].wait()

    def statistics(self) -> EngineStatistics:
        writers = {
            name: state.writer.statistics()
            for name, state in self._buckets.items()
            if state.writer is not None
        }
        totals = self._commit_totals
        return EngineStatistics(
            len(self._buckets),
            len(writers),
            writers,
            totals.batches,
            totals.mutations,
            totals.seconds,
        )


def resolve_range(
    size: int, first: int | None, last: int | None, suffix: int | None
) -> tuple[int, int]:
    """An HTTP byte range against ``size``: ``(start, end)`` with end exclusive."""
    if suffix is not None:
        if suffix <= 0:
            raise InvalidRange(size)
        return max(0, size - suffix), size
    if first is None:
        return 0, size
    if first >= size or (last is not None and last < first):
        raise InvalidRange(size)
    end = size if last is None else min(last + 1, size)
    return first, end


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
