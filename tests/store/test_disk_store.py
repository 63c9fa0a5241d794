"""Disk store specifics: durability across reopen, torn and corrupted packs, rotation,
concurrency, and the cost of a sync (one fsync per pack, not per blob)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
from pathlib import Path

import pytest
import trio
import trio.testing

from relay.store.base import BlobNotFound, BlobRead, CorruptBlob, StoreError
from relay.store.disk import DiskBlobStore, open_disk_store


def sha256_multihash(data: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(data).digest()


def make_blob(seed: int, size: int) -> tuple[bytes, bytes]:
    data = random.Random(seed).randbytes(size)
    return sha256_multihash(data), data


def pack_files(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


async def put_all(store: DiskBlobStore, blobs: list[tuple[bytes, bytes]]) -> None:
    for mh, data in blobs:
        await store.put(mh, data)


async def test_synced_blobs_survive_reopening(tmp_path: Path) -> None:
    blobs = [make_blob(n, size) for n, size in enumerate([0, 1, 4096, 100_000, 1 << 20])]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, blobs)
        await store.sync()
    async with open_disk_store(tmp_path) as store:
        for mh, data in blobs:
            assert await store.has(mh)
            assert await store.get(mh) == data
        await store.put(*blobs[0])
        await store.sync()  # a small put is checked against the index here
        assert store.statistics().blobs_deduplicated == 1


async def test_a_reopened_store_appends_to_a_new_pack(tmp_path: Path) -> None:
    first, second = make_blob(1, 100), make_blob(2, 100)
    async with open_disk_store(tmp_path) as store:
        await store.put(*first)
        await store.sync()
        first_pack = store.disk_statistics().active_pack
    size_after_first_run = pack_files(tmp_path)[-1].stat().st_size
    async with open_disk_store(tmp_path) as store:
        await store.put(*second)
        await store.sync()
        second_pack = store.disk_statistics().active_pack
    assert first_pack is not None
    assert second_pack is not None
    assert second_pack > first_pack
    assert next(p.stat().st_size for p in pack_files(tmp_path)) == size_after_first_run
    async with open_disk_store(tmp_path) as store:
        assert await store.get(first[0]) == first[1]
        assert await store.get(second[0]) == second[1]


async def test_two_openers_write_their_own_packs_and_read_each_others_blobs(
    tmp_path: Path,
) -> None:
    # What two relay worker processes do: each opens the store, each writes (large blobs
    # go to a pack at once, small ones at the sync), each reads what the other synced.
    first_blobs = [make_blob(n, size) for n, size in enumerate([300_000, 1_000, 200_000])]
    second_blobs = [make_blob(10 + n, size) for n, size in enumerate([250_000, 2_000])]
    async with open_disk_store(tmp_path) as first, open_disk_store(tmp_path) as second:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(put_all, first, first_blobs)
            nursery.start_soon(put_all, second, second_blobs)
        await first.sync()
        await second.sync()
        first_pack = first.disk_statistics().active_pack
        second_pack = second.disk_statistics().active_pack
        assert first_pack is not None
        assert second_pack is not None
        assert first_pack != second_pack  # never one pack written by two processes
        for mh, data in second_blobs:
            assert await first.has(mh)
            assert await first.get(mh) == data
        for mh, data in first_blobs:
            assert await second.get(mh) == data
        await second.put(*first_blobs[0])  # the other's blob deduplicates here too
        await second.sync()
        assert second.statistics().blobs_deduplicated == 1
    async with open_disk_store(tmp_path) as reopened:
        for mh, data in first_blobs + second_blobs:
            assert await reopened.get(mh) == data


async def test_a_store_another_process_holds_alone_is_refused(tmp_path: Path) -> None:
    async with open_disk_store(tmp_path):
        pass
    lock = os.open(tmp_path / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StoreError, match="another process"):
            async with open_disk_store(tmp_path):
                pass  # pragma: no cover
    finally:
        os.close(lock)


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


async def test_a_flipped_data_byte_is_corrupt_not_data(tmp_path: Path) -> None:
    mh, data = make_blob(7, 10_000)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
    (pack,) = pack_files(tmp_path)
    flip_byte(pack, pack.stat().st_size - 5000)  # inside the data, at blob offset 5000
    async with open_disk_store(tmp_path) as store:
        # A range that avoids the damage is still verifiably intact.
        intact = data[:1000]
        assert await store.get(mh, 0, 1000, expect=sha256_multihash(intact)) == intact
        with pytest.raises(CorruptBlob):
            await store.get(mh, 4000, 2000, expect=sha256_multihash(data[4000:6000]))
        # That read proved the record damaged: the store forgot it.
        with pytest.raises(BlobNotFound):
            await store.get(mh)


async def test_a_damaged_record_header_is_corrupt_not_data(tmp_path: Path) -> None:
    mh, data = make_blob(8, 1000)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
    (pack,) = pack_files(tmp_path)
    flip_byte(pack, 20)  # inside the multihash in the header
    async with open_disk_store(tmp_path) as store:
        with pytest.raises(CorruptBlob, match="record header"):
            await store.get(mh, 0, 10, expect=sha256_multihash(data[:10]))
        with pytest.raises(BlobNotFound):  # forgotten by the read above
            await store.get(mh)


@pytest.mark.parametrize("cut", [1, 500, 1010])
async def test_a_truncated_pack_never_yields_data(tmp_path: Path, cut: int) -> None:
    """A torn tail (the disk lost the end of a synced record) is refused, not served."""
    kept, torn = make_blob(1, 3000), make_blob(2, 1000)
    async with open_disk_store(tmp_path) as store:
        await put_all(store, [kept, torn])
        await store.sync()
    (pack,) = pack_files(tmp_path)
    os.truncate(pack, pack.stat().st_size - cut)
    async with open_disk_store(tmp_path) as store:
        assert await store.get(kept[0]) == kept[1]
        with pytest.raises(CorruptBlob):
            await store.get(torn[0], 990, 10, expect=sha256_multihash(torn[1][990:]))
        with pytest.raises(BlobNotFound):  # forgotten by the read above
            await store.get(torn[0])


async def test_a_missing_pack_is_corrupt_and_its_number_is_not_reused(tmp_path: Path) -> None:
    mh, data = make_blob(3, 100)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
        lost_pack = store.disk_statistics().active_pack
    (pack,) = pack_files(tmp_path)
    pack.unlink()
    async with open_disk_store(tmp_path) as store:
        with pytest.raises(CorruptBlob, match="missing"):
            await store.get(mh)
        await store.put(*make_blob(4, 100))
        await store.sync()
        new_pack = store.disk_statistics().active_pack
        assert lost_pack is not None
        assert new_pack is not None
        assert new_pack > lost_pack
        with pytest.raises(BlobNotFound):  # forgotten by the first read
            await store.get(mh)


async def test_unsynced_puts_are_forgotten_or_intact_never_corrupt(tmp_path: Path) -> None:
    synced = [make_blob(n, 2000) for n in range(5)]
    # Larger than STAGED_BLOB_MAX_BYTES: written to the pack at once, not at the sync.
    unsynced = [make_blob(100 + n, 100_000) for n in range(5)]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, synced)
        await store.sync()
        await put_all(store, unsynced)
    # A crash mid-write: the tail of the last unsynced record never reached the disk.
    for pack in pack_files(tmp_path):
        os.truncate(pack, pack.stat().st_size - 700)
    async with open_disk_store(tmp_path) as store:
        for mh, data in synced:
            assert await store.get(mh) == data
        for mh, data in unsynced:
            try:
                assert await store.get(mh) == data
            except BlobNotFound:
                pass
            # ... and a lost blob can be stored again, durably.
            await store.put(mh, data)
        await store.sync()
    async with open_disk_store(tmp_path) as store:
        for mh, data in unsynced:
            assert await store.get(mh) == data


async def test_packs_rotate_at_the_size_limit(tmp_path: Path) -> None:
    limit = 10_000
    blobs = [make_blob(n, 3000) for n in range(20)]
    big = make_blob(99, 25_000)  # larger than a pack: it gets a pack of its own
    async with open_disk_store(tmp_path, pack_size_limit_bytes=limit) as store:
        await put_all(store, [*blobs[:10], big, *blobs[10:]])
        await store.sync()
    sizes = [p.stat().st_size for p in pack_files(tmp_path)]
    record_overhead = 14 + 34
    assert len(sizes) >= 20 * (3000 + record_overhead) // limit
    assert sizes.count(25_000 + record_overhead) == 1
    assert all(size <= limit for size in sizes if size != 25_000 + record_overhead)
    async with open_disk_store(tmp_path, pack_size_limit_bytes=limit) as store:
        for mh, data in [*blobs, big]:
            assert await store.get(mh) == data


async def test_one_sync_costs_one_fsync_per_pack_written_not_per_blob(tmp_path: Path) -> None:
    async with open_disk_store(tmp_path) as store:
        await put_all(store, [make_blob(n, 4096) for n in range(100)])
        await store.sync()
        # one pack plus the packs directory (the pack is new), one index commit
        assert store.disk_statistics().file_syncs == 2
        assert store.disk_statistics().index_commits == 1
        await put_all(store, [make_blob(n, 4096) for n in range(100, 200)])
        await store.sync()
        assert store.disk_statistics().file_syncs == 3
        await store.sync()  # nothing new: no fsync at all
        assert store.disk_statistics().file_syncs == 3
        assert store.disk_statistics().pending_blobs == 0


async def test_hundreds_of_concurrent_puts_and_syncs(tmp_path: Path) -> None:
    blobs = [make_blob(n, 1000 + n * 37) for n in range(300)]
    acknowledged: list[tuple[bytes, bytes]] = []

    async def put_then_sync(index: int) -> None:
        mh, data = blobs[index % len(blobs)]  # indexes past 300 put duplicates
        await store.put(mh, data)
        if index % 3 == 0:
            await store.sync()
            acknowledged.append((mh, data))

    async with open_disk_store(tmp_path, pack_size_limit_bytes=64_000) as store:
        async with trio.open_nursery() as nursery:
            for index in range(400):
                nursery.start_soon(put_then_sync, index)
        stats = store.statistics()
        assert stats.blobs_written == 300
        assert stats.blobs_deduplicated == 100
        for mh, data in blobs:
            assert await store.get(mh) == data
    # closed without a final sync: what each sync acknowledged must be there
    async with open_disk_store(tmp_path) as store:
        assert len(acknowledged) == 134
        for mh, data in acknowledged:
            assert await store.get(mh) == data


async def test_a_sync_called_during_another_covers_puts_before_it(tmp_path: Path) -> None:
    early, late = make_blob(1, 1 << 20), make_blob(2, 1 << 20)
    async with open_disk_store(tmp_path) as store:
        await store.put(*early)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.sync)
            await trio.lowlevel.checkpoint()  # the first sync is under way with only `early`
            await store.put(*late)
            await store.sync()
        assert store.disk_statistics().pending_blobs == 0
    async with open_disk_store(tmp_path) as store:
        assert await store.get(late[0]) == late[1]


async def test_delete_is_durable(tmp_path: Path) -> None:
    kept, deleted = make_blob(1, 500), make_blob(2, 500)
    async with open_disk_store(tmp_path) as store:
        await put_all(store, [kept, deleted])
        await store.sync()
        await store.delete(deleted[0])
    async with open_disk_store(tmp_path) as store:
        assert await store.get(kept[0]) == kept[1]
        assert not await store.has(deleted[0])


async def test_a_deleted_pending_blob_is_not_resurrected_by_sync(tmp_path: Path) -> None:
    mh, data = make_blob(5, 500)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.delete(mh)
        await store.sync()
        assert not await store.has(mh)
    async with open_disk_store(tmp_path) as store:
        assert not await store.has(mh)


async def test_a_cancelled_sync_leaves_its_puts_for_the_next_sync(tmp_path: Path) -> None:
    mh, data = make_blob(6, 500)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.sync()
        await store.sync()
    async with open_disk_store(tmp_path) as store:
        assert await store.get(mh) == data


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    async with open_disk_store(tmp_path) as store:
        pass
    with pytest.raises(StoreError, match="closed"):
        await store.put(*make_blob(1, 10))
    await store.aclose()  # idempotent


async def test_aclose_waits_for_puts_already_under_way(tmp_path: Path) -> None:
    blobs = [make_blob(n, 1 << 20) for n in range(8)]
    async with open_disk_store(tmp_path) as store:
        async with trio.open_nursery() as nursery:
            for mh, data in blobs:
                nursery.start_soon(store.put, mh, data)
            await trio.testing.wait_all_tasks_blocked()  # the puts are in their threads
            await store.aclose()
        assert store.statistics().blobs_written == len(blobs)
    async with open_disk_store(tmp_path) as reopened:
        await reopened.put(*blobs[0])  # forgotten (never synced), so written again
        assert reopened.statistics().blobs_written == 1


def direct_io_works_in(directory: Path) -> bool:
    probe = directory / "probe"
    probe.write_bytes(b"")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_DIRECT))
    except (OSError, AttributeError):
        return False
    finally:
        probe.unlink()
    return True


async def test_large_records_go_direct_aligned_and_read_back(tmp_path: Path) -> None:
    if not direct_io_works_in(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT (tmpfs?): the buffered path is used")
    sizes = [1 << 20, 100, (1 << 20) + 7, 4096, 200_000, 0, 3 << 20]
    blobs = [make_blob(n, size) for n, size in enumerate(sizes)]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, blobs)
        await store.sync()
        writer = store._writer
        assert writer.direct_writes == 4  # the records of at least 128 KiB
        for mh, data in blobs:
            location = store._index.lookup(mh)
            assert location is not None
            if len(data) >= 128 << 10:
                assert location.offset % 4096 == 0
    async with open_disk_store(tmp_path) as store:
        for mh, data in blobs:
            assert await store.get(mh) == data


async def test_a_refused_direct_write_is_written_buffered_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import relay.store.packs as packs

    def refuse(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(packs.os, "pwrite", refuse)  # only the direct path uses pwrite
    blobs = [make_blob(n, 1 << 20) for n in range(3)]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, blobs)
        await store.sync()
        assert store._writer.direct_writes == 0
    monkeypatch.undo()
    async with open_disk_store(tmp_path) as store:
        for mh, data in blobs:
            assert await store.get(mh) == data


async def test_small_puts_are_staged_and_written_together_at_the_sync(tmp_path: Path) -> None:
    small = [make_blob(n, 4096) for n in range(50)]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, small)
        counted_before_sync = store.statistics()
        assert pack_files(tmp_path) == []  # nothing written yet ...
        assert store.disk_statistics().pending_blobs == 50
        for mh, data in small:  # ... yet every blob reads back, whole and in part
            assert await store.has(mh)
            assert await store.get(mh) == data
        mh, data = small[7]
        part = data[100:200]
        assert await store.get(mh, 100, 100, expect=sha256_multihash(part)) == part
        await store.sync()
        assert store.disk_statistics().pending_blobs == 0
        assert len(pack_files(tmp_path)) == 1
        stats = store.statistics()
        assert (stats.blobs_written, stats.bytes_written) == (50, 50 * 4096)
        assert counted_before_sync.blobs_written == 0
    async with open_disk_store(tmp_path) as store:
        for mh, data in small:
            assert await store.get(mh) == data


async def test_staged_puts_are_forgotten_without_a_sync(tmp_path: Path) -> None:
    mh, data = make_blob(1, 4096)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
    async with open_disk_store(tmp_path) as store:
        assert not await store.has(mh)
        with pytest.raises(BlobNotFound):
            await store.get(mh)


async def test_a_staged_blob_already_indexed_is_not_written_again(tmp_path: Path) -> None:
    mh, data = make_blob(1, 4096)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
        size = pack_files(tmp_path)[0].stat().st_size
        await store.put(mh, data)  # staged again: the index is only asked at the sync
        await store.sync()
        assert pack_files(tmp_path)[0].stat().st_size == size
        stats = store.statistics()
        assert (stats.blobs_written, stats.blobs_deduplicated) == (1, 1)


async def test_a_deleted_staged_blob_is_never_written(tmp_path: Path) -> None:
    kept, dropped = make_blob(1, 4096), make_blob(2, 4096)
    async with open_disk_store(tmp_path) as store:
        await put_all(store, [kept, dropped])
        await store.delete(dropped[0])
        assert not await store.has(dropped[0])
        await store.sync()
        assert store.statistics().blobs_written == 1
    async with open_disk_store(tmp_path) as store:
        assert await store.get(kept[0]) == kept[1]
        assert not await store.has(dropped[0])


async def test_staging_is_bounded_then_puts_write_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relay.store.disk.STAGED_TOTAL_MAX_BYTES", 10 * 4096)
    blobs = [make_blob(n, 4096) for n in range(25)]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, blobs)
        # the 15 past the bound were written at once; the 10 staged wait for the sync
        (pack,) = pack_files(tmp_path)
        assert pack.stat().st_size == 15 * (4096 + 14 + 34)
        await store.sync()
        assert pack.stat().st_size == 25 * (4096 + 14 + 34)
        assert store.statistics().blobs_written == 25
    async with open_disk_store(tmp_path) as store:
        for mh, data in blobs:
            assert await store.get(mh) == data


async def test_a_put_during_a_sync_is_readable_and_left_for_the_next(tmp_path: Path) -> None:
    first, second = make_blob(1, 4096), make_blob(2, 4096)
    async with open_disk_store(tmp_path) as store:
        await store.put(*first)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.sync)
            await trio.testing.wait_all_tasks_blocked()  # the sync is writing `first`
            assert await store.get(first[0]) == first[1]  # still readable meanwhile
            await store.put(*second)
        assert store.disk_statistics().pending_blobs == 1
        await store.sync()
        assert store.disk_statistics().pending_blobs == 0
    async with open_disk_store(tmp_path) as store:
        assert await store.get(first[0]) == first[1]
        assert await store.get(second[0]) == second[1]


async def test_large_reads_go_direct_whole_and_in_part(tmp_path: Path) -> None:
    if not direct_io_works_in(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT (tmpfs?): the buffered path is used")
    # Odd sizes, all written buffered back to back, so records sit at unaligned offsets:
    # a direct read must not care how the bytes were written.
    sizes = [300_001, 7, (1 << 20) + 3, 140_000]
    blobs = [make_blob(n, size) for n, size in enumerate(sizes)]
    async with open_disk_store(tmp_path, pack_size_limit_bytes=8 << 20) as store:
        store._writer._direct = False  # all buffered, back to back
        await put_all(store, blobs)
        await store.sync()
        location = store._index.lookup(blobs[2][0])
        assert location is not None
        assert location.offset % 4096 != 0
    async with open_disk_store(tmp_path) as store:
        for mh, data in blobs:
            assert await store.get(mh) == data
        assert store._reader.direct_reads == 3  # the three blobs of at least 128 KiB
        mh, data = blobs[2]
        for start, length in [(1, 200_000), (4095, 131_073), (len(data) - 131_072, 131_072)]:
            part = data[start : start + length]
            got = await store.get(mh, start, length, expect=sha256_multihash(part))
            assert got == part
        assert store._reader.direct_reads == 6
        small_part = data[10:20]
        assert await store.get(mh, 10, 10, expect=sha256_multihash(small_part)) == small_part
        assert store._reader.direct_reads == 6  # a small range stays buffered


async def test_a_refused_direct_read_falls_back_to_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import relay.store.packs as packs

    blobs = [make_blob(n, 1 << 20) for n in range(3)]
    async with open_disk_store(tmp_path) as store:
        await put_all(store, blobs)
        await store.sync()

    def refuse(fd: int, buffers: object, offset: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(packs.os, "preadv", refuse)  # only the direct path uses preadv
    async with open_disk_store(tmp_path) as store:
        for mh, data in blobs:
            assert await store.get(mh) == data
        assert store._reader.direct_reads == 0


async def test_a_truncated_pack_read_direct_is_corrupt(tmp_path: Path) -> None:
    mh, data = make_blob(1, 1 << 20)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
    (pack,) = pack_files(tmp_path)
    os.truncate(pack, pack.stat().st_size - 5000)
    async with open_disk_store(tmp_path) as store:
        with pytest.raises(CorruptBlob, match="truncated"):
            await store.get(mh)


async def test_a_blob_read_in_several_places_stays_in_the_page_cache(tmp_path: Path) -> None:
    if not direct_io_works_in(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT (tmpfs?): the buffered path is used")
    # Like a commit CAR a listing page reads many blocks of: read whole, buffered, once.
    mh, data = make_blob(1, 300_000)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
        pieces = [(start, 50_000) for start in range(0, 300_000, 50_000)]
        reads = [
            BlobRead(mh, start, length, sha256_multihash(data[start : start + length]))
            for start, length in pieces
        ]
        got = await store.get_many(reads)
        assert got == [data[start : start + length] for start, length in pieces]
        assert store._reader.direct_reads == 0
        assert await store.get(mh) == data  # read alone and whole, it is a chunk: direct
        assert store._reader.direct_reads == 1


@pytest.mark.parametrize("size", [1000, 200_000])  # staged until the sync; written at once
async def test_a_put_after_its_pack_was_deleted_stores_the_blob_again(
    tmp_path: Path, size: int
) -> None:
    mh, data = make_blob(9, size)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
    (pack,) = pack_files(tmp_path)
    pack.unlink()
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)  # the index still names it, but its record is gone
        await store.sync()
        assert store.statistics().blobs_written == 1
        assert store.statistics().blobs_deduplicated == 0
    async with open_disk_store(tmp_path) as store:
        assert await store.get(mh) == data


async def test_a_damaged_record_is_forgotten_durably_by_a_read(tmp_path: Path) -> None:
    mh, data = make_blob(10, 200_000)
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
    (pack,) = pack_files(tmp_path)
    flip_byte(pack, pack.stat().st_size - 100_000)
    async with open_disk_store(tmp_path) as store:
        with pytest.raises(CorruptBlob):
            await store.get(mh)
    async with open_disk_store(tmp_path) as store:  # the row is gone, not just in memory
        assert not await store.has(mh)
        await store.put(mh, data)
        await store.sync()
        assert await store.get(mh) == data


async def test_a_pending_record_found_damaged_is_not_indexed_by_the_next_sync(
    tmp_path: Path,
) -> None:
    mh, data = make_blob(11, 200_000)  # written through: pending until the sync
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        (pack,) = pack_files(tmp_path)
        flip_byte(pack, pack.stat().st_size - 100_000)
        with pytest.raises(CorruptBlob):
            await store.get(mh)
        await store.sync()
        assert not await store.has(mh)
        await store.put(mh, data)
        await store.sync()
        assert await store.get(mh) == data
