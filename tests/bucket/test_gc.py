"""History retention, the root set, mark and sweep, and the background collection.

Over the memory store, whose blobs' ages tests set (``MemoryBlobStore.stored_at_ms``).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from relay.bucket import (
    GcConfig,
    Multipart,
    UploadRequest,
    VersionNotRetained,
    collect_garbage,
    serve_gc,
)
from relay.bucket.engine import Engine, EngineConfig, open_engine
from relay.bucket.gc import mark_reachable
from relay.bucket.roots import read_root_set
from relay.chunker import ChunkerConfig
from relay.ipld import multihash
from relay.ipld.car import CarBlock, CarDecoder, CarError, CarHeader
from relay.registry import SqliteRegistry, open_sqlite_registry
from relay.registry.base import Claim, now_ms
from relay.store import MemoryBlobStore

CHUNK = 16 << 10
SMALL_CHUNKS = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=CHUNK), unixfs_width=4)
HOUR_MS = 3600 * 1000
# No history kept, but a grace: what most tests need to see old versions go.
NO_HISTORY = GcConfig(history_retention_seconds=0, grace_seconds=3600)


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def age_everything(store: MemoryBlobStore, hours: float = 2) -> None:
    """Make every blob stored so far older than the grace."""
    for mh in store.stored_at_ms:
        store.stored_at_ms[mh] = now_ms() - int(hours * HOUR_MS)


def holds_no_block(blob: bytes) -> bool:
    """Whether ``blob`` is a CAR of a header and no block."""
    decoder = CarDecoder()
    decoder.feed(blob)
    decoder.end_of_input()
    try:
        events = [decoder.next_event() for _ in range(3)]
    except CarError:
        return False
    return isinstance(events[0], CarHeader) and not any(
        isinstance(event, CarBlock) for event in events
    )


async def past_the_retention() -> None:
    # With a retention of 0 s, a commit of this very millisecond is still retained.
    await trio.sleep(0.005)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    async with open_sqlite_registry(tmp_path / "registry.sqlite") as opened:
        yield opened


@pytest.fixture
async def engine(registry: SqliteRegistry, store: MemoryBlobStore) -> AsyncIterator[Engine]:
    config = replace(SMALL_CHUNKS, history_retention_seconds=0)
    async with open_engine(store, registry, config) as opened:
        yield opened


async def test_old_versions_leave_the_retained_set_and_their_blobs_are_swept(
    engine: Engine, store: MemoryBlobStore
) -> None:
    first, second = os.urandom(3 * CHUNK), os.urandom(3 * CHUNK)
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body(first))
    await engine.put_object("b", "k", body(second))
    first_chunks = {multihash.sha2_256(first[i : i + CHUNK]) for i in range(0, len(first), CHUNK)}
    age_everything(store)

    kept = await collect_garbage(engine, replace(NO_HISTORY, history_retention_seconds=86400))
    assert kept.blobs_swept == 0
    assert first_chunks <= set(store.blobs)
    assert await engine.bucket_root("b", 2)  # version 2 is the first put: still readable

    await past_the_retention()
    report = await collect_garbage(engine, NO_HISTORY)
    assert report.blobs_swept > 0
    assert not first_chunks & set(store.blobs)
    assert await engine.read_object("b", "k") == second
    with pytest.raises(VersionNotRetained):
        await engine.bucket_root("b", 1)
    assert await engine.bucket_root("b", 2)  # the current version is always readable


async def test_a_pinned_version_stays_readable_and_whole(
    engine: Engine, store: MemoryBlobStore
) -> None:
    first, second = os.urandom(2 * CHUNK + 5), os.urandom(CHUNK)
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body(first))
    version = (await engine.bucket_log("b", limit=1))[0].version
    await engine.put_object("b", "k", body(second))
    root = await engine.registry.root_at("b", version)
    assert root is not None
    await engine.registry.set_pin("snapshot-1", "b", root)
    age_everything(store)
    await past_the_retention()

    await collect_garbage(engine, NO_HISTORY)
    manifest = await engine.head_object("b", "k", version=version)
    async with engine.open_object("b", "k", manifest=manifest) as stream:
        assert b"".join([chunk async for chunk in stream.chunks]) == first

    await engine.registry.set_pin("snapshot-1", "b", None)
    await collect_garbage(engine, NO_HISTORY)
    with pytest.raises(VersionNotRetained):
        await engine.head_object("b", "k", version=version)
    assert multihash.sha2_256(first[:CHUNK]) not in store.blobs


async def test_mark_finds_exactly_what_the_root_set_reaches(
    engine: Engine, store: MemoryBlobStore
) -> None:
    await engine.create_bucket("b")
    await engine.put_object("b", "small", body(b"one chunk"))
    await engine.put_object("b", "large", body(os.urandom(5 * CHUNK + 1)))
    await engine.put_object("b", "gone", body(os.urandom(CHUNK + 7)))
    await engine.delete_object("b", "gone")
    multipart = Multipart(engine)
    upload = await multipart.create("b", "open", UploadRequest())
    part_data = os.urandom(2 * CHUNK)
    await multipart.upload_part(upload, 1, body(part_data))
    orphan_old, orphan_young = b"left behind", b"just arrived"
    for data in (orphan_old, orphan_young):
        await store.put(multihash.sha2_256(data), data)
    everything = set(store.blobs)

    root_set = await read_root_set(engine.registry, history_retention_seconds=86400)
    marked = await mark_reachable(engine, root_set)
    # Every blob but the orphans and the commit CARs that hold no block (the delete's:
    # its root is version 2's, already stored): each other version's commit CAR, both
    # objects' chunks and the large one's index CAR, the deleted object's (history), the
    # open upload's part.
    empty_cars = {mh for mh in everything if holds_no_block(store.blobs[mh])}
    assert len(empty_cars) == 1
    orphans = {multihash.sha2_256(orphan_old), multihash.sha2_256(orphan_young)}
    assert marked == everything - orphans - empty_cars
    assert {multihash.sha2_256(part_data[:CHUNK]), multihash.sha2_256(part_data[CHUNK:])} <= marked

    await past_the_retention()
    root_set = await read_root_set(engine.registry, history_retention_seconds=0)
    current = await mark_reachable(engine, root_set)
    assert current < marked  # the deleted object is history no longer kept
    assert multihash.sha2_256(b"one chunk") in current


async def test_sweep_deletes_old_unreachable_blobs_and_their_rows_and_dry_run_nothing(
    engine: Engine, store: MemoryBlobStore
) -> None:
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body(b"kept"))
    orphan_old, orphan_young = b"left behind", b"just arrived"
    await store.put(multihash.sha2_256(orphan_old), orphan_old)
    await engine.registry.add_claims([Claim(multihash.sha2_256(orphan_old), "https://x/o")])
    age_everything(store)
    await store.put(multihash.sha2_256(orphan_young), orphan_young)
    before = dict(store.blobs)

    dry = await collect_garbage(engine, GcConfig(grace_seconds=3600), dry_run=True)
    assert (dry.blobs_swept, dry.bytes_swept, dry.blobs_kept_young) == (1, len(orphan_old), 1)
    assert store.blobs == before
    assert await engine.registry.claims_for(multihash.sha2_256(orphan_old))

    real = await collect_garbage(engine, GcConfig(grace_seconds=3600))
    assert (real.blobs_swept, real.bytes_swept) == (dry.blobs_swept, dry.bytes_swept)
    assert set(store.blobs) == set(before) - {multihash.sha2_256(orphan_old)}
    assert await engine.registry.claims_for(multihash.sha2_256(orphan_old)) == []
    assert await engine.read_object("b", "k") == b"kept"


async def test_a_write_that_deduplicates_against_an_unreachable_blob_survives_a_collection(
    engine: Engine, store: MemoryBlobStore
) -> None:
    """The dangerous case: a chunk old enough to sweep, unreachable, that a write in
    flight has just put again (deduplicated, so still old) and not yet committed."""
    data = os.urandom(3 * CHUNK)
    await engine.create_bucket("b")
    await engine.put_object("b", "old", body(data))
    await engine.delete_object("b", "old")
    age_everything(store)
    await past_the_retention()
    first_chunk_put = trio.Event()
    collected = trio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[:CHUNK]
        yield data[CHUNK : 2 * CHUNK]  # the first chunk is put once the second arrives
        first_chunk_put.set()
        await collected.wait()
        yield data[2 * CHUNK :]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: engine.put_object("b", "new", slow_body()))
        await first_chunk_put.wait()
        await trio.sleep(0.05)  # let the put of the first chunk finish
        report = await collect_garbage(engine, NO_HISTORY)
        collected.set()
    assert report.blobs_kept_in_flight >= 1
    assert await engine.read_object("b", "new") == data


async def test_collections_while_writes_are_in_flight_lose_nothing(
    engine: Engine, store: MemoryBlobStore
) -> None:
    # No grace at all: only the record of writes in flight protects their blobs.
    config = GcConfig(history_retention_seconds=0, grace_seconds=0)
    await engine.create_bucket("b")
    written: dict[str, bytes] = {}
    rng = random.Random(7)

    async def writer(name: str) -> None:
        for round_number in range(8):
            data = rng.randbytes(rng.randrange(1, 3 * CHUNK))

            async def dribble(data: bytes = data) -> AsyncIterator[bytes]:
                for start in range(0, len(data), 5000):
                    await trio.sleep(0.001)
                    yield data[start : start + 5000]

            key = f"{name}/{round_number % 3}"
            await engine.put_object("b", key, dribble())
            written[key] = data

    async with trio.open_nursery() as nursery:
        for name in ("w1", "w2", "w3"):
            nursery.start_soon(writer, name)
        collections = 0
        while len(written) < 9 or collections < 5:
            await collect_garbage(engine, config)
            collections += 1
            await trio.sleep(0.002)
    await collect_garbage(engine, config)
    for key, data in written.items():
        assert await engine.read_object("b", key) == data


async def test_a_commit_outliving_the_put_that_started_its_writer_is_not_swept(
    engine: Engine, registry: SqliteRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first put to a bucket starts its writer, whose task inherits that put's
    # context. Batch 2's commit CAR is put while that put may still be running; the put
    # then returns, a collection fences and marks before batch 2's swap, and must still
    # keep batch 2's CAR (the manifests its root names live in it). Whether the writer
    # reaches batch 2 before the first put returns is the scheduler's choice, so try it
    # on several buckets.
    config = GcConfig(history_retention_seconds=0, grace_seconds=0)
    commit = registry.commit
    gates: dict[tuple[str, int], trio.Event] = {}
    reached: dict[tuple[str, int], trio.Event] = {}

    async def gated_commit(bucket: str, *, expected_version: int, **kwargs: Any) -> Any:
        reached.setdefault((bucket, expected_version), trio.Event()).set()
        await gates.setdefault((bucket, expected_version), trio.Event()).wait()
        return await commit(bucket, expected_version=expected_version, **kwargs)

    monkeypatch.setattr(registry, "commit", gated_commit)
    for attempt in range(12):
        bucket = f"b{attempt}"
        await engine.create_bucket(bucket)
        created = await registry.get_bucket(bucket)
        assert created is not None
        version = created.version
        for step in (version, version + 1):
            reached[bucket, step], gates[bucket, step] = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.put_object, bucket, "first", body(b"one"))
            await reached[bucket, version].wait()
            nursery.start_soon(engine.put_object, bucket, "second", body(b"two"))
            await trio.testing.wait_all_tasks_blocked()
            gates[bucket, version].set()
            await reached[bucket, version + 1].wait()
            await trio.testing.wait_all_tasks_blocked()
            await collect_garbage(engine, config)
            gates[bucket, version + 1].set()
        assert await engine.read_object(bucket, "second") == b"two"
    await collect_garbage(engine, config)


async def test_churn_keeps_the_number_of_stored_blobs_bounded(
    engine: Engine, store: MemoryBlobStore
) -> None:
    config = GcConfig(history_retention_seconds=0, grace_seconds=0)
    rng = random.Random(18)
    await engine.create_bucket("b")
    tree: dict[str, bytes] = {}
    counts = []
    for _ in range(100):
        # A sync of a changing tree: some files change, some go, some arrive.
        for key in list(tree):
            if rng.random() < 0.2:
                del tree[key]
                await engine.delete_object("b", key)
        for _ in range(rng.randrange(1, 5)):
            key = f"dir{rng.randrange(4)}/file{rng.randrange(12)}"
            tree[key] = rng.randbytes(rng.randrange(100, 2 * CHUNK))
            await engine.put_object("b", key, body(tree[key]))
        await past_the_retention()
        await collect_garbage(engine, config)
        counts.append(len(store.blobs))
    # Each live object holds at most 2 chunks and an index CAR, plus the commit CARs the
    # current tree's nodes live in: never the history.
    assert max(counts) <= 4 * 48 + 10
    for key, data in tree.items():
        assert await engine.read_object("b", key) == data


async def test_the_background_collection_runs_every_interval(
    engine: Engine, store: MemoryBlobStore
) -> None:
    orphan = b"nobody wants me"
    await store.put(multihash.sha2_256(orphan), orphan)
    config = GcConfig(history_retention_seconds=0, grace_seconds=0, interval_seconds=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_gc, engine, config)
        with trio.fail_after(30):
            while multihash.sha2_256(orphan) in store.blobs:  # noqa: ASYNC110 (polls a store)
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()


async def test_a_collection_with_an_unreadable_block_sweeps_nothing(
    engine: Engine, store: MemoryBlobStore
) -> None:
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body(b"x" * 10))
    orphan = b"would be swept"
    await store.put(multihash.sha2_256(orphan), orphan)
    age_everything(store)
    record = (await engine.registry.commit_log("b"))[0]
    assert record.car is not None
    del store.blobs[record.car]  # the current root's node is gone
    engine.blocks.nodes = type(engine.blocks.nodes)(1 << 20)  # forget cached nodes
    with pytest.raises(Exception, match=r"missing|not found"):
        await collect_garbage(engine, GcConfig(grace_seconds=0))
    assert multihash.sha2_256(orphan) in store.blobs


class HeldSyncStore(MemoryBlobStore):
    """A store whose next sync waits: the moment between the bucket writer's put of its
    commit CAR and the registry commit that names it."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: trio.Event | None = None
        self.syncing = trio.Event()

    async def sync(self) -> None:
        hold, self.hold = self.hold, None
        if hold is not None:
            self.syncing.set()
            await hold.wait()
        await super().sync()


async def test_a_commit_car_put_but_not_yet_committed_survives_a_collection(
    registry: SqliteRegistry,
) -> None:
    store = HeldSyncStore()
    config = GcConfig(history_retention_seconds=0, grace_seconds=0)
    async with open_engine(store, registry, SMALL_CHUNKS) as engine:
        await engine.create_bucket("b")
        await engine.put_object("b", "first", body(b"starts the bucket's writer"))
        store.hold = release = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: engine.put_object("b", "second", body(b"in flight")))
            await store.syncing.wait()  # its commit CAR is put; the commit waits
            await collect_garbage(engine, config)
            release.set()
        engine.blocks.nodes = type(engine.blocks.nodes)(1 << 20)  # read from the store
        assert await engine.read_object("b", "second") == b"in flight"
        assert await engine.read_object("b", "first") == b"starts the bucket's writer"
