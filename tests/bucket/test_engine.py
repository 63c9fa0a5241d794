from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import blake3
import pytest
import trio
from bucket_helpers import body_of

from relay.bucket.engine import Engine
from relay.bucket.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidKey,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
)
from relay.bucket.manifest import Manifest
from relay.chunker import ChunkedBody
from relay.ipld import multihash
from relay.ipld.cid import CID, RAW
from relay.store import CorruptBlob, MemoryBlobStore
from relay.unixfs import cid_of_stream


async def test_put_then_get_returns_the_same_bytes_for_small_and_multi_chunk_objects(
    engine: Engine,
) -> None:
    await engine.create_bucket("b")
    for size in (0, 1, 16 << 10, (16 << 10) + 1, 300_000):
        data = os.urandom(size)
        manifest = await engine.put_object("b", f"k{size}", body_of(data))
        assert manifest.size == size
        assert await engine.read_object("b", f"k{size}") == data


async def test_manifest_carries_md5_etag_blake3_cid_and_the_unixfs_root(engine: Engine) -> None:
    await engine.create_bucket("b")
    data = os.urandom(100_000)
    manifest = await engine.put_object("b", "k", body_of(data), content_type="text/plain")
    assert manifest.etag == hashlib.md5(data).hexdigest()
    assert manifest.content_cid == CID.v1(RAW, multihash.wrap_blake3(blake3.blake3(data).digest()))
    assert manifest.body == cid_of_stream([data], 16 << 10, 4)
    head = await engine.head_object("b", "k")
    assert head == manifest
    assert head.content_type == "text/plain"


@pytest.mark.parametrize(
    ("first", "last", "suffix", "expected"),
    [
        (0, 0, None, slice(0, 1)),
        (100, 40_000, None, slice(100, 40_001)),
        (16 << 10, (32 << 10) - 1, None, slice(16 << 10, 32 << 10)),
        (50_000, None, None, slice(50_000, None)),
        (None, None, 1000, slice(-1000, None)),
        (0, 10_000_000, None, slice(0, None)),
        (None, None, 10_000_000, slice(0, None)),
    ],
)
async def test_byte_ranges_read_exactly_the_requested_bytes(
    engine: Engine, first: int | None, last: int | None, suffix: int | None, expected: slice
) -> None:
    await engine.create_bucket("b")
    data = os.urandom(100_003)
    await engine.put_object("b", "k", body_of(data))
    async with engine.open_object("b", "k", first=first, last=last, suffix=suffix) as stream:
        got = b"".join([chunk async for chunk in stream.chunks])
    assert got == data[expected]
    assert (stream.start, stream.end) == expected.indices(len(data))[:2]


async def test_unsatisfiable_ranges_are_refused(engine: Engine) -> None:
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body_of(b"x" * 10))
    for first, last, suffix in ((10, None, None), (5, 4, None), (None, None, 0)):
        with pytest.raises(InvalidRange):
            async with engine.open_object("b", "k", first=first, last=last, suffix=suffix):
                pass


async def test_concurrent_puts_are_group_committed_and_all_readable(engine: Engine) -> None:
    await engine.create_bucket("b")
    count = 300
    bodies = {f"dir/{i:04d}": os.urandom(100 + i) for i in range(count)}

    async with trio.open_nursery() as nursery:
        for key, data in bodies.items():
            nursery.start_soon(engine.put_object, "b", key, body_of(data))

    log = await engine.bucket_log("b")
    assert len(log) - 1 < count / 2, "concurrent puts should share commits"
    assert sum(record.puts for record in log) == count
    for key, data in bodies.items():
        assert await engine.read_object("b", key) == data
    page = await engine.list_objects("b", limit=1000)
    assert [entry.key for entry in page.entries] == sorted(bodies)


async def test_listing_honours_prefix_start_after_and_limit(engine: Engine) -> None:
    await engine.create_bucket("b")
    keys = ["a", "a/1", "a/2", "a/3", "b/1", "c"]
    for key in keys:
        await engine.put_object("b", key, body_of(b"."))
    page = await engine.list_objects("b", prefix="a/")
    assert [e.key for e in page.entries] == ["a/1", "a/2", "a/3"]
    assert not page.is_truncated
    page = await engine.list_objects("b", prefix="a/", start_after="a/1", limit=1)
    assert [e.key for e in page.entries] == ["a/2"]
    assert page.is_truncated
    page = await engine.list_objects("b", start_after="a/3")
    assert [e.key for e in page.entries] == ["b/1", "c"]
    page = await engine.list_objects("b", prefix="zz")
    assert page.entries == []
    page = await engine.list_objects("b", limit=0)
    assert page.entries == []
    assert page.is_truncated


async def test_delete_is_idempotent_and_the_key_disappears(engine: Engine) -> None:
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body_of(b"data"))
    await engine.delete_object("b", "k")
    await engine.delete_object("b", "k")
    with pytest.raises(NoSuchKey):
        await engine.head_object("b", "k")
    results = await engine.delete_objects("b", ["k", "never", ""])
    assert results[0] is None
    assert results[1] is None
    assert isinstance(results[2], InvalidKey)


async def test_every_version_of_a_bucket_stays_readable(engine: Engine) -> None:
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body_of(b"one"))
    first_version = (await engine.bucket_log("b"))[0].version
    await engine.put_object("b", "k", body_of(b"two"))
    await engine.delete_object("b", "k")
    old = await engine.head_object("b", "k", version=first_version)
    assert old.size == 3
    with pytest.raises(NoSuchKey):
        await engine.head_object("b", "k")
    versions = [record.version for record in await engine.bucket_log("b")]
    assert versions == sorted(versions, reverse=True)
    assert versions[-1] == 0


async def test_bucket_lifecycle(engine: Engine) -> None:
    await engine.create_bucket("b", owner="alice")
    with pytest.raises(BucketAlreadyExists) as exists:
        await engine.create_bucket("b", owner="alice")
    assert exists.value.owned_by_caller
    with pytest.raises(BucketAlreadyExists) as taken:
        await engine.create_bucket("b", owner="bob")
    assert not taken.value.owned_by_caller
    await engine.put_object("b", "k", body_of(b"x"))
    with pytest.raises(BucketNotEmpty):
        await engine.delete_bucket("b")
    await engine.delete_object("b", "k")
    await engine.delete_bucket("b")
    with pytest.raises(NoSuchBucket):
        await engine.head_bucket("b")
    with pytest.raises(NoSuchBucket):
        await engine.put_object("b", "k", body_of(b"x"))
    assert [r.name for r in await engine.list_buckets()] == []


def if_none_match_star(current: Manifest | None) -> None:
    if current is not None:
        raise PreconditionFailed("the key exists")


async def test_create_only_writes_race_and_exactly_one_wins(engine: Engine) -> None:
    await engine.create_bucket("b")
    outcomes: list[str] = []

    async def writer(i: int) -> None:
        try:
            await engine.put_object("b", "k", body_of(b"%d" % i), precondition=if_none_match_star)
            outcomes.append(f"won:{i}")
        except PreconditionFailed:
            outcomes.append("lost")

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(writer, i)
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1
    assert outcomes.count("lost") == 19
    assert await engine.read_object("b", "k") == winners[0].split(":")[1].encode()


async def test_a_body_that_fails_midway_commits_nothing(engine: Engine) -> None:
    await engine.create_bucket("b")

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 50_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await engine.put_object("b", "k", broken())
    with pytest.raises(NoSuchKey):
        await engine.head_object("b", "k")
    assert len(await engine.bucket_log("b")) == 1


async def test_a_rejected_digest_commits_nothing(engine: Engine) -> None:
    await engine.create_bucket("b")

    def refuse(body: ChunkedBody) -> None:
        raise ValueError("Content-MD5 mismatch")

    with pytest.raises(ValueError, match="Content-MD5"):
        await engine.put_object("b", "k", body_of(b"data"), verify=refuse)
    with pytest.raises(NoSuchKey):
        await engine.head_object("b", "k")


async def test_a_corrupt_chunk_fails_the_read_instead_of_serving_it(
    engine: Engine, store: MemoryBlobStore
) -> None:
    await engine.create_bucket("b")
    data = os.urandom(40_000)
    await engine.put_object("b", "k", body_of(data))
    chunk_mh = multihash.sha2_256(data[: 16 << 10])
    store.blobs[chunk_mh] = b"y" * (16 << 10)
    with pytest.raises(CorruptBlob):
        await engine.read_object("b", "k")


class FlakySyncStore(MemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next_sync = False

    async def sync(self) -> None:
        if self.fail_next_sync:
            self.fail_next_sync = False
            raise OSError("disk full")
        await super().sync()


async def test_a_failed_commit_fails_its_waiters_and_the_bucket_keeps_working(
    tmp_path: trio.Path,
) -> None:
    from pathlib import Path

    from relay.bucket.engine import open_engine
    from relay.registry import open_sqlite_registry

    store = FlakySyncStore()
    async with (
        open_sqlite_registry(Path(tmp_path) / "r.sqlite") as registry,
        open_engine(store, registry) as engine,
    ):
        await engine.create_bucket("b")
        await engine.put_object("b", "before", body_of(b"1"))
        store.fail_next_sync = True
        with pytest.raises(OSError, match="disk full"):
            await engine.put_object("b", "lost", body_of(b"2"))
        with pytest.raises(NoSuchKey):
            await engine.head_object("b", "lost")
        await engine.put_object("b", "after", body_of(b"3"))
        page = await engine.list_objects("b")
        assert [e.key for e in page.entries] == ["after", "before"]


async def test_writers_retire_when_idle_and_come_back_on_demand(
    tmp_path: trio.Path, autojump_clock: trio.abc.Clock
) -> None:
    from pathlib import Path

    from relay.bucket.engine import EngineConfig, open_engine
    from relay.registry import open_sqlite_registry

    async with (
        open_sqlite_registry(Path(tmp_path) / "r.sqlite") as registry,
        open_engine(MemoryBlobStore(), registry, EngineConfig(writer_idle_seconds=5)) as engine,
    ):
        await engine.create_bucket("b")
        await engine.put_object("b", "one", body_of(b"1"))
        assert engine.statistics().writers_running == 1
        await trio.sleep(60)
        assert engine.statistics().writers_running == 0
        await engine.put_object("b", "two", body_of(b"2"))
        assert [e.key for e in (await engine.list_objects("b")).entries] == ["one", "two"]


class SlowSyncStore(MemoryBlobStore):
    """A store whose durability costs what a disk's does: a few milliseconds per sync."""

    async def sync(self) -> None:
        await trio.sleep(0.005)
        await super().sync()


async def test_batches_grow_with_commit_latency(tmp_path: trio.Path) -> None:
    from pathlib import Path

    from relay.bucket.engine import open_engine
    from relay.registry import open_sqlite_registry

    async with (
        open_sqlite_registry(Path(tmp_path) / "r.sqlite") as registry,
        open_engine(SlowSyncStore(), registry) as engine,
    ):
        await engine.create_bucket("b")
        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(engine.put_object, "b", f"k{i}", body_of(b"x" * 100))
        log = await engine.bucket_log("b")
        assert sum(record.puts for record in log) == 300
        assert len(log) - 1 <= 300 / 5, f"{len(log) - 1} commits for 300 puts"
        assert engine.statistics().writers["b"].largest_batch >= 10


async def test_concurrent_downloads_share_the_read_ahead_budget(engine: Engine) -> None:
    data = os.urandom(20 * (16 << 10))  # 20 chunks of the fixture's 16 KiB
    await engine.create_bucket("b")
    await engine.put_object("b", "k", body_of(data))
    budget = engine.read_ahead_budget
    assert budget.capacity == (4 << 20) // (16 << 10)  # the default, in chunks
    lowest_free = budget.capacity

    async def download() -> None:
        nonlocal lowest_free
        parts = []
        async with engine.open_object("b", "k") as stream:
            async for chunk in stream.chunks:
                lowest_free = min(lowest_free, budget.free)
                parts.append(chunk)
        assert b"".join(parts) == data

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(download)
    assert lowest_free < budget.capacity  # the downloads read ahead through the budget ...
    assert budget.free == budget.capacity  # ... and gave every token back
