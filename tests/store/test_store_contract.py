"""The BlobStore contract, run against every backend (see ``conftest.any_store``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.ipld import multihash
from relay.store.base import BlobNotFound, BlobRead, BlobStore, CorruptBlob
from relay.store.disk import DiskBlobStore, open_disk_store
from relay.store.memory import MemoryBlobStore
from relay.store.s3 import S3BlobStore


def sha256_multihash(data: bytes) -> bytes:
    # Written out here rather than via relay.ipld.multihash, so the tests do not only
    # agree with the code under test: 0x12 = sha2-256, 0x20 = 32 bytes.
    return b"\x12\x20" + hashlib.sha256(data).digest()


BLOB = bytes(range(256)) * 40 + b"tail"
BLOB_MH = sha256_multihash(BLOB)


def test_helper_agrees_with_relay_multihash() -> None:
    assert sha256_multihash(BLOB) == multihash.sha2_256(BLOB)


async def test_store_implements_the_protocol(any_store: BlobStore) -> None:
    assert isinstance(any_store, BlobStore)


async def test_put_then_get_returns_the_same_bytes(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    assert await any_store.get(BLOB_MH) == BLOB


async def test_empty_blob_round_trips(any_store: BlobStore) -> None:
    empty_mh = sha256_multihash(b"")
    await any_store.put(empty_mh, b"")
    assert await any_store.get(empty_mh) == b""


async def test_put_twice_is_a_deduplicated_no_op(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    await any_store.put(BLOB_MH, BLOB)
    await any_store.sync()  # a store may count a put as late as the next sync
    stats = any_store.statistics()
    assert (stats.blobs_written, stats.bytes_written, stats.blobs_deduplicated) == (
        1,
        len(BLOB),
        1,
    )
    assert await any_store.get(BLOB_MH) == BLOB


async def test_put_after_sync_is_still_deduplicated(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    await any_store.sync()
    await any_store.put(BLOB_MH, BLOB)
    await any_store.sync()  # a store may count a put as late as the next sync
    assert any_store.statistics().blobs_written == 1
    assert any_store.statistics().blobs_deduplicated == 1


async def test_get_of_a_missing_blob_raises_blob_not_found(any_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as caught:
        await any_store.get(BLOB_MH)
    assert caught.value.multihash == BLOB_MH


async def test_ranged_get_returns_the_range_checked_against_expect(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    part = BLOB[1000:1500]
    assert await any_store.get(BLOB_MH, 1000, 500, expect=sha256_multihash(part)) == part


def slice_of(start: int, length: int | None) -> bytes:
    return BLOB[start:] if length is None else BLOB[start : start + length]


async def test_get_many_answers_each_read_in_order(any_store: BlobStore) -> None:
    other = b"another blob"
    await any_store.put(BLOB_MH, BLOB)
    await any_store.put(sha256_multihash(other), other)
    await any_store.sync()
    ranges = [(5000, 300), (0, 10), (9000, None), (1000, 0)]
    reads = [
        BlobRead(BLOB_MH, start, length, sha256_multihash(slice_of(start, length)))
        for start, length in ranges
    ]
    reads.insert(2, BlobRead(sha256_multihash(other)))
    answers = await any_store.get_many(reads)
    expected = [slice_of(start, length) for start, length in ranges]
    expected.insert(2, other)
    assert answers == expected
    assert await any_store.get_many([]) == []


async def test_get_many_checks_every_read(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    good = BlobRead(BLOB_MH, 10, 20, sha256_multihash(BLOB[10:30]))
    with pytest.raises(CorruptBlob):
        await any_store.get_many([good, BlobRead(BLOB_MH, 10, 20, sha256_multihash(b"x"))])
    with pytest.raises(BlobNotFound):
        await any_store.get_many([good, BlobRead(sha256_multihash(b"never stored"))])


async def test_ranged_get_to_the_end_of_the_blob(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    part = BLOB[9000:]
    assert await any_store.get(BLOB_MH, 9000, expect=sha256_multihash(part)) == part


async def test_ranged_get_without_expect_is_refused(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    with pytest.raises(ValueError, match="partial read"):
        await any_store.get(BLOB_MH, 10, 20)


async def test_ranged_get_with_the_wrong_expect_is_corrupt(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    with pytest.raises(CorruptBlob):
        await any_store.get(BLOB_MH, 10, 20, expect=sha256_multihash(BLOB[11:31]))


async def test_range_beyond_the_blob_is_corrupt(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    tail = BLOB[-10:]
    with pytest.raises(CorruptBlob):
        await any_store.get(BLOB_MH, len(BLOB) - 10, 11, expect=sha256_multihash(tail))


async def test_negative_offset_or_length_is_refused(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    with pytest.raises(ValueError, match="negative"):
        await any_store.get(BLOB_MH, -1)
    with pytest.raises(ValueError, match="negative"):
        await any_store.get(BLOB_MH, 0, -1)


async def test_full_range_without_expect_is_a_whole_blob_read(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    assert await any_store.get(BLOB_MH, 0, len(BLOB)) == BLOB


async def test_has_reports_presence(any_store: BlobStore) -> None:
    assert not await any_store.has(BLOB_MH)
    await any_store.put(BLOB_MH, BLOB)
    assert await any_store.has(BLOB_MH)
    await any_store.sync()
    assert await any_store.has(BLOB_MH)


@pytest.mark.parametrize("synced", [False, True])
async def test_delete_forgets_the_blob(any_store: BlobStore, synced: bool) -> None:
    await any_store.put(BLOB_MH, BLOB)
    if synced:
        await any_store.sync()
    await any_store.delete(BLOB_MH)
    assert not await any_store.has(BLOB_MH)
    with pytest.raises(BlobNotFound):
        await any_store.get(BLOB_MH)
    await any_store.sync()
    assert not await any_store.has(BLOB_MH)


async def test_delete_of_an_absent_blob_is_a_no_op(any_store: BlobStore) -> None:
    await any_store.delete(BLOB_MH)
    assert not await any_store.has(BLOB_MH)


async def test_put_after_delete_stores_the_blob_again(any_store: BlobStore) -> None:
    await any_store.put(BLOB_MH, BLOB)
    await any_store.sync()
    await any_store.delete(BLOB_MH)
    await any_store.put(BLOB_MH, BLOB)
    assert await any_store.get(BLOB_MH) == BLOB


async def test_statistics_count_writes_syncs_and_reads(any_store: BlobStore) -> None:
    blobs = [bytes([n]) * (n + 1) for n in range(5)]
    for blob in blobs:
        await any_store.put(sha256_multihash(blob), blob)
    await any_store.put(sha256_multihash(blobs[0]), blobs[0])
    await any_store.sync()
    await any_store.sync()
    for blob in blobs[:3]:
        await any_store.get(sha256_multihash(blob))
    stats = any_store.statistics()
    assert stats.blobs_written == 5
    assert stats.bytes_written == 1 + 2 + 3 + 4 + 5
    assert stats.blobs_deduplicated == 1
    assert stats.syncs == 2
    assert stats.reads == 3


# -- self-healing: lost and damaged bytes are never trusted for long --------------------------
#
# Each test damages the store's bytes behind its back, the way a disk or an upstream can:
# the memory store's dict, the disk store's pack file, the s3 store's upstream object. (The
# piri store's healing is tested against the fake node in ``test_piri_store``.)

# One staged by the disk store until its sync, one written through at once.
HEALING_SIZES = [len(BLOB), 200_000]


def _upstream_client(store: S3BlobStore) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    config = store.config
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _record_offset(store: DiskBlobStore, data: bytes) -> tuple[Path, int]:
    """The pack holding ``data`` and where its bytes start (the record's data)."""
    for pack in sorted((store.root / "packs").glob("*.pack")):
        found = pack.read_bytes().find(data)
        if found >= 0:
            return pack, found
    raise AssertionError("the blob is in no pack")


async def lose(store: BlobStore, mh: bytes, data: bytes) -> None:
    """The bytes vanish: a dropped dict entry, a pack's lost tail, a deleted upstream object.

    (A pack deleted while the store runs is its active pack here, still open for appends:
    ``test_disk_store`` deletes packs between runs instead.)"""
    if isinstance(store, MemoryBlobStore):
        del store.blobs[mh]
    elif isinstance(store, DiskBlobStore):
        pack, start = _record_offset(store, data)
        os.truncate(pack, start)
    elif isinstance(store, S3BlobStore):
        await trio.to_thread.run_sync(
            lambda: _upstream_client(store).delete_object(
                Bucket=store.config.bucket, Key=store.object_key(mh)
            )
        )
    else:
        raise AssertionError(f"no way to damage a {type(store).__name__} here")


async def flip_a_byte(store: BlobStore, mh: bytes, data: bytes) -> None:
    """One byte in the middle of the blob flips; its length stays the same."""
    middle = len(data) // 2
    flipped = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
    if isinstance(store, MemoryBlobStore):
        store.blobs[mh] = flipped
    elif isinstance(store, DiskBlobStore):
        pack, start = _record_offset(store, data)
        with pack.open("r+b") as file:
            file.seek(start + middle)
            file.write(flipped[middle : middle + 1])
    elif isinstance(store, S3BlobStore):
        await trio.to_thread.run_sync(
            lambda: _upstream_client(store).put_object(
                Bucket=store.config.bucket, Key=store.object_key(mh), Body=flipped
            )
        )
    else:
        raise AssertionError(f"no way to damage a {type(store).__name__} here")


def healing_blob(size: int) -> tuple[bytes, bytes]:
    data = (BLOB * (size // len(BLOB) + 1))[:size]
    return sha256_multihash(data), data


@pytest.mark.parametrize("size", HEALING_SIZES)
async def test_a_put_of_lost_bytes_stores_them_again(
    damageable_store: BlobStore, size: int
) -> None:
    mh, data = healing_blob(size)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    await lose(damageable_store, mh, data)
    await damageable_store.put(mh, data)  # the same bytes again: not deduplicated against nothing
    await damageable_store.sync()
    assert await damageable_store.get(mh) == data
    assert damageable_store.statistics().blobs_written == 2


@pytest.mark.parametrize("size", HEALING_SIZES)
async def test_a_read_of_lost_bytes_forgets_them(damageable_store: BlobStore, size: int) -> None:
    mh, data = healing_blob(size)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    await lose(damageable_store, mh, data)
    with pytest.raises((BlobNotFound, CorruptBlob)):
        await damageable_store.get(mh)
    with pytest.raises(BlobNotFound):  # forgotten: no longer believed held
        await damageable_store.get(mh)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    assert await damageable_store.get(mh) == data


@pytest.mark.parametrize("size", HEALING_SIZES)
async def test_a_read_of_a_flipped_byte_forgets_the_blob(
    damageable_store: BlobStore, size: int
) -> None:
    mh, data = healing_blob(size)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    await flip_a_byte(damageable_store, mh, data)
    with pytest.raises(CorruptBlob):
        await damageable_store.get(mh)
    assert damageable_store.statistics().blobs_forgotten == 1
    await damageable_store.put(mh, data)  # forgotten by the read: stored again, whatever the check
    await damageable_store.sync()
    assert await damageable_store.get(mh) == data
    assert damageable_store.statistics().blobs_written == 2


@pytest.mark.parametrize("size", HEALING_SIZES)
async def test_a_range_read_of_a_flipped_byte_forgets_the_blob(
    damageable_store: BlobStore, size: int
) -> None:
    mh, data = healing_blob(size)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    await flip_a_byte(damageable_store, mh, data)
    middle = len(data) // 2
    part = data[middle - 10 : middle + 10]
    with pytest.raises(CorruptBlob):
        await damageable_store.get(mh, middle - 10, 20, expect=sha256_multihash(part))
    with pytest.raises((BlobNotFound, CorruptBlob)):
        await damageable_store.get(mh)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    assert await damageable_store.get(mh, middle - 10, 20, expect=sha256_multihash(part)) == part


async def test_a_range_read_with_the_wrong_expect_forgets_nothing(
    damageable_store: BlobStore,
) -> None:
    await damageable_store.put(BLOB_MH, BLOB)
    await damageable_store.sync()
    with pytest.raises(CorruptBlob):
        await damageable_store.get(BLOB_MH, 10, 20, expect=sha256_multihash(b"another block"))
    with pytest.raises(CorruptBlob):
        await damageable_store.get(BLOB_MH, len(BLOB) - 5, 10, expect=sha256_multihash(BLOB[-5:]))
    assert await damageable_store.get(BLOB_MH) == BLOB  # the blob was fine: still held
    await damageable_store.put(BLOB_MH, BLOB)
    await damageable_store.sync()
    assert damageable_store.statistics().blobs_written == 1
    assert damageable_store.statistics().blobs_forgotten == 0


@pytest.mark.parametrize("size", HEALING_SIZES)
async def test_a_flipped_byte_is_stored_again_by_the_put_or_after_the_next_read(
    damageable_store: BlobStore, size: int
) -> None:
    """The memory store's put check re-hashes what it holds; the disk store's reads the
    record's header and last byte, the s3 store's HEAD sees only the length: there the
    put is deduplicated, the next read catches the flip and forgets, and the put after it
    stores the bytes again."""
    mh, data = healing_blob(size)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    await flip_a_byte(damageable_store, mh, data)
    await damageable_store.put(mh, data)
    await damageable_store.sync()
    if not isinstance(damageable_store, MemoryBlobStore):
        assert damageable_store.statistics().blobs_deduplicated == 1
        with pytest.raises(CorruptBlob):
            await damageable_store.get(mh)
        await damageable_store.put(mh, data)
        await damageable_store.sync()
    assert await damageable_store.get(mh) == data
    assert damageable_store.statistics().blobs_written == 2


@asynccontextmanager
async def open_store(kind: str, directory: Path) -> AsyncIterator[BlobStore]:
    if kind == "memory":
        yield MemoryBlobStore()
    else:
        async with open_disk_store(directory) as store:
            yield store


# Hypothesis runs each example in its own trio.run, so this test opens its own store
# rather than sharing the (per-test) ``damageable_store`` fixture across examples.
@pytest.mark.parametrize("kind", ["memory", "disk"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(blobs=st.lists(st.binary(max_size=3000), min_size=1, max_size=4), data=st.data())
async def test_any_range_reads_back_exactly(
    kind: str, tmp_path: Path, blobs: list[bytes], data: st.DataObject
) -> None:
    async with open_store(kind, tmp_path / "store") as store:
        for blob in blobs:  # the disk store persists across examples: same bytes, same name
            await store.put(sha256_multihash(blob), blob)
        blob = data.draw(st.sampled_from(blobs))
        start = data.draw(st.integers(0, len(blob)))
        end = data.draw(st.integers(start, len(blob)))
        part = blob[start:end]
        mh = sha256_multihash(blob)
        got = await store.get(mh, start, end - start, expect=sha256_multihash(part))
        assert got == part
        if kind == "disk":
            await store.sync()
