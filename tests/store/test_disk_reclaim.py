"""The disk store gives space back: blob ages, compaction, reads and writes during it."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from relay.store.base import BlobNotFound, ReclaimReport, StoredBlob
from relay.store.disk import DiskBlobStore, open_disk_store
from relay.store.packs import PackReader, PackWriter, pack_name

PACK_LIMIT = 2 << 20  # small packs: a few dozen of them in a test


def make_blob(seed: int, size: int) -> tuple[bytes, bytes]:
    data = random.Random(seed).randbytes(size)
    return b"\x12\x20" + hashlib.sha256(data).digest(), data


def tree_bytes(path: Path) -> int:
    """What ``du`` counts: the blocks every file under ``path`` occupies."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


async def fill(store: DiskBlobStore, count: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    blobs = [
        make_blob(seed * 100_000 + n, rng.choice([3000, 70_000, 300_000])) for n in range(count)
    ]
    for mh, data in blobs:
        await store.put(mh, data)
    await store.sync()
    return blobs


async def test_list_blobs_names_every_durable_blob_with_its_size_and_age(tmp_path: Path) -> None:
    before = time.time_ns() // 1_000_000
    async with open_disk_store(tmp_path, reserve_bytes=0) as store:
        blobs = [make_blob(n, size) for n, size in enumerate([0, 10, 100_000, 1 << 20])]
        for mh, data in blobs:
            await store.put(mh, data)
        unsynced = make_blob(99, 5)
        await store.sync()
        await store.put(*unsynced)  # not durable: not listed
        listed = [blob async for blob in store.list_blobs()]
    after = time.time_ns() // 1_000_000
    assert sorted(b.multihash for b in listed) == sorted(mh for mh, _ in blobs)
    assert [b.multihash for b in listed] == sorted(b.multihash for b in listed)
    sizes = {mh: len(data) for mh, data in blobs}
    for blob in listed:
        assert isinstance(blob, StoredBlob)
        assert blob.size == sizes[blob.multihash]
        assert before <= blob.stored_at_ms <= after


async def test_list_blobs_pages_through_a_large_index(tmp_path: Path) -> None:
    async with open_disk_store(tmp_path, reserve_bytes=0) as store:
        blobs = [make_blob(n, 8) for n in range(2500)]
        for mh, data in blobs:
            await store.put(mh, data)
        await store.sync()
        listed = [blob.multihash async for blob in store.list_blobs()]
    assert listed == sorted(mh for mh, _ in blobs)


async def test_an_index_from_before_ages_is_upgraded_and_dated_to_the_upgrade(
    tmp_path: Path,
) -> None:
    blob = make_blob(1, 100)
    async with open_disk_store(tmp_path, reserve_bytes=0) as store:
        await store.put(*blob)
        await store.sync()
    # Make the index what a store before ages wrote: no column, user_version 0.
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.executescript(
            "CREATE TABLE old AS SELECT mh, pack, offset, length FROM blobs;"
            "DROP TABLE blobs;"
            "CREATE TABLE blobs (mh BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
            " offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;"
            "INSERT INTO blobs SELECT * FROM old; DROP TABLE old; PRAGMA user_version = 0;"
        )
    before = time.time_ns() // 1_000_000
    async with open_disk_store(tmp_path, reserve_bytes=0) as store:
        listed = [b async for b in store.list_blobs()]
        assert await store.get(blob[0]) == blob[1]
    assert [b.multihash for b in listed] == [blob[0]]
    assert listed[0].stored_at_ms >= before


async def test_reclaim_gives_back_the_space_of_deleted_blobs(tmp_path: Path) -> None:
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        blobs = await fill(store, 300)
        kept = blobs[::10]
        for mh, _ in blobs:
            if (mh, _) not in kept:
                await store.delete(mh)
        before = tree_bytes(tmp_path / "packs")
        report = await store.reclaim_space()
        after = tree_bytes(tmp_path / "packs")
        live = sum(len(data) + 48 for _, data in kept)
        assert isinstance(report, ReclaimReport)
        assert report.packs_deleted > 0
        assert report.bytes_freed >= before - after
        assert after <= live * 1.05 + PACK_LIMIT, (before, after, live)
        for mh, data in kept:
            assert await store.get(mh) == data
        for mh, _ in blobs[1:10]:
            assert not await store.has(mh)
        statistics = store.disk_statistics()
        assert statistics.packs_deleted == report.packs_deleted
        assert statistics.bytes_reclaimed == report.bytes_freed
    # And after a restart: the index points at the copies.
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        for mh, data in kept:
            assert await store.get(mh) == data
        again = await store.reclaim_space()
        assert again.packs_rewritten == 0  # nothing left below the threshold


async def test_packs_still_mostly_live_are_left_alone(tmp_path: Path) -> None:
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        blobs = await fill(store, 100)
        await store.delete(blobs[0][0])
        report = await store.reclaim_space()
        assert report.packs_rewritten <= 1  # only the pack that lost a blob, if any
        for mh, data in blobs[1:]:
            assert await store.get(mh) == data


async def test_reads_and_writes_go_on_while_packs_are_compacted(tmp_path: Path) -> None:
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0, max_open_packs=2
    ) as store:
        blobs = await fill(store, 300)
        kept = blobs[::4]
        for mh, data in blobs:
            if (mh, data) not in kept:
                await store.delete(mh)
        reads = 0
        failures: list[BaseException] = []
        done = trio.Event()
        written = [make_blob(10_000 + n, 50_000) for n in range(40)]

        async def read_forever() -> None:
            nonlocal reads
            rng = random.Random(7)
            while not done.is_set():
                mh, data = rng.choice(kept)
                try:
                    assert await store.get(mh) == data
                except Exception as exc:  # reported below
                    failures.append(exc)
                    return
                reads += 1

        async def write_meanwhile() -> None:
            for mh, data in written:
                await store.put(mh, data)
                await store.sync()

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(read_forever)
            nursery.start_soon(write_meanwhile)
            report = await store.reclaim_space()
            done.set()
        assert not failures, failures
        assert reads > 0
        assert report.packs_rewritten > 0
        for mh, data in kept + written:
            assert await store.get(mh) == data
        assert store.statistics().blobs_forgotten == 0


async def test_a_damaged_record_is_forgotten_not_copied(tmp_path: Path) -> None:
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        blobs = await fill(store, 40)
        victim_mh, victim_data = blobs[1]
        for mh, _ in blobs[2:]:
            await store.delete(mh)
        # Flip a byte inside the victim's data, behind the store's back.
        pack = sorted((tmp_path / "packs").glob("*.pack"))[0]
        raw = bytearray(pack.read_bytes())
        where = raw.find(victim_data[:64])
        assert where > 0
        raw[where + 10] ^= 0xFF
        pack.write_bytes(bytes(raw))
        await store.reclaim_space()
        assert await store.get(blobs[0][0]) == blobs[0][1]
        assert not await store.has(victim_mh)
        try:
            await store.get(victim_mh)
        except BlobNotFound:
            pass
        else:  # pragma: no cover
            raise AssertionError("a damaged blob read back")
        await store.put(victim_mh, victim_data)  # the next put repairs it
        await store.sync()
        assert await store.get(victim_mh) == victim_data


async def test_a_pack_another_writer_holds_open_is_never_compacted(tmp_path: Path) -> None:
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        blobs = await fill(store, 20)
        # Another writer (another process's, in a store many processes share) appends a
        # record it has not indexed yet: its pack has nothing live as far as the index knows.
        other = PackWriter(tmp_path / "packs", 1000, PACK_LIMIT)
        unindexed_mh, unindexed_data = make_blob(555, 5000)
        location = other.append(unindexed_mh, unindexed_data)
        other.sync()
        try:
            await store.reclaim_space()
            assert (tmp_path / "packs" / pack_name(location.pack)).exists()
            reader = PackReader(tmp_path / "packs", 4)
            with reader.batch() as read_record:
                assert read_record(unindexed_mh, location, 0, location.length) == unindexed_data
            reader.close()
        finally:
            other.close()
        # Once its writer let go (or died), the pack is garbage like any other.
        report = await store.reclaim_space()
        assert report.packs_deleted >= 1
        assert not (tmp_path / "packs" / pack_name(location.pack)).exists()
        for mh, data in blobs:
            assert await store.get(mh) == data


async def test_a_read_that_looked_a_blob_up_before_its_pack_was_compacted_finds_it_moved(
    tmp_path: Path,
) -> None:
    async with open_disk_store(
        tmp_path, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        blobs = await fill(store, 40)
        mh, data = blobs[0]
        for other_mh, _ in blobs[1:]:
            await store.delete(other_mh)
        index = store._index  # the lookup a concurrent read made, before the compaction
        stale = index.lookup_many([mh])
        await store.reclaim_space()
        assert index.lookup(mh) != stale[mh]
        looked_up = index.lookup_many
        index.lookup_many = lambda mhs: stale  # type: ignore[method-assign]
        try:
            assert await store.get(mh) == data
        finally:
            index.lookup_many = looked_up  # type: ignore[method-assign]
        assert store.statistics().blobs_forgotten == 0


@asynccontextmanager
async def an_old_blob_in_two_processes(
    root: Path, mh: bytes, data: bytes
) -> AsyncIterator[tuple[DiskBlobStore, DiskBlobStore]]:
    """A collector and a writer on one data directory, as relay serve's workers are,
    holding one blob stored long ago (its index row dated as if a day had passed)."""
    async with (
        open_disk_store(root, reserve_bytes=0) as collector,
        open_disk_store(root, reserve_bytes=0) as writer,
    ):
        await writer.put(mh, data)
        await writer.sync()
        with sqlite3.connect(root / "index.sqlite") as db:
            db.execute("UPDATE blobs SET stored_at_ms = 0")
        yield collector, writer


@pytest.mark.parametrize("size", [100, 200_000], ids=["staged", "written-through"])
async def test_a_put_deduplicated_by_another_process_is_not_swept(
    tmp_path: Path, size: int
) -> None:
    # The collector's own record of writes in flight cannot see the other process's put,
    # which re-uses an old unreachable blob, so the put must restart the blob's age, and
    # the collection's delete (decided on the listing's age) must yield to it.
    mh, data = make_blob(7, size)
    async with an_old_blob_in_two_processes(tmp_path, mh, data) as (collector, writer):
        [listed] = [blob async for blob in collector.list_blobs()]
        assert listed.stored_at_ms == 0
        collection_began_ms = time.time_ns() // 1_000_000 - 1
        await writer.put(mh, data)  # deduplicated: no bytes written ...
        await writer.sync()
        assert writer.statistics().blobs_written == 1
        # ... but stored again as far as any collection is concerned.
        assert not await collector.delete(mh, stored_before_ms=collection_began_ms)
        assert await collector.get(mh) == data
        assert await writer.get(mh) == data


@pytest.mark.parametrize("size", [100, 200_000], ids=["staged", "written-through"])
async def test_a_put_after_a_collections_delete_stores_the_blob_again(
    tmp_path: Path, size: int
) -> None:
    mh, data = make_blob(8, size)
    async with an_old_blob_in_two_processes(tmp_path, mh, data) as (collector, writer):
        assert await collector.delete(mh, stored_before_ms=time.time_ns() // 1_000_000)
        await writer.put(mh, data)  # the row is gone: written again, not deduplicated
        await writer.sync()
        assert writer.statistics().blobs_written == 2
        assert await collector.get(mh) == data
