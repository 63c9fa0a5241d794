"""What garbage collection asks of a store: ``list_blobs`` and ``reclaim_space``.

Run against the stores that hold bytes themselves (``damageable_store``: memory, disk,
s3); piri lists what relay recorded, tested on its own below.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import trio
from piri_fake import piri_delegation, piri_store_config, running_fake_piri

from relay.ipld import multihash
from relay.store.base import BlobStore, ReclaimReport, StoredBlob
from relay.store.piri import open_piri_store
from relay.store.s3 import S3BlobStore
from relay.ucan import Signer

BLOBS = [bytes([n]) * (1000 + n) for n in range(5)]


async def listed(store: BlobStore) -> dict[bytes, StoredBlob]:
    return {blob.multihash: blob async for blob in store.list_blobs()}


async def test_list_blobs_names_every_durable_blob_once_with_its_size_and_age(
    damageable_store: BlobStore,
) -> None:
    before_ms = time.time_ns() // 1_000_000 - 2_000  # an upstream's clock may lag a little
    for data in BLOBS:
        await damageable_store.put(multihash.sha2_256(data), data)
    await damageable_store.sync()
    found = await listed(damageable_store)
    assert set(found) == {multihash.sha2_256(data) for data in BLOBS}
    for data in BLOBS:
        blob = found[multihash.sha2_256(data)]
        assert blob.size == len(data)
        assert before_ms <= blob.stored_at_ms <= time.time_ns() // 1_000_000 + 2_000


async def test_a_deleted_blob_is_no_longer_listed(damageable_store: BlobStore) -> None:
    for data in BLOBS[:2]:
        await damageable_store.put(multihash.sha2_256(data), data)
    await damageable_store.sync()
    await damageable_store.delete(multihash.sha2_256(BLOBS[0]))
    assert set(await listed(damageable_store)) == {multihash.sha2_256(BLOBS[1])}


async def test_reclaim_space_reports_what_it_gave_back(damageable_store: BlobStore) -> None:
    await damageable_store.put(multihash.sha2_256(BLOBS[0]), BLOBS[0])
    await damageable_store.sync()
    await damageable_store.delete(multihash.sha2_256(BLOBS[0]))
    report = await damageable_store.reclaim_space()
    assert isinstance(report, ReclaimReport)
    assert report.bytes_freed >= 0


async def test_s3_listing_pages_and_skips_objects_that_are_not_blobs(
    damageable_store: BlobStore,
) -> None:
    if not isinstance(damageable_store, S3BlobStore):
        return
    store = damageable_store
    # ListObjectsV2 answers at most 1,000 keys a page: make it page.
    many = [n.to_bytes(4, "big") for n in range(1_005)]
    async with trio.open_nursery() as nursery:
        for data in many:
            nursery.start_soon(store.put, multihash.sha2_256(data), data)
    assert len(await listed(store)) == len(many)


async def test_s3_delete_runs_on_deleted(damageable_store: BlobStore) -> None:
    if not isinstance(damageable_store, S3BlobStore):
        return
    forgotten: list[bytes] = []

    async def on_deleted(mh: bytes) -> None:
        forgotten.append(mh)

    store = S3BlobStore(damageable_store.config, on_deleted=on_deleted)
    try:
        mh = multihash.sha2_256(BLOBS[0])
        await store.put(mh, BLOBS[0])
        await store.delete(mh)
        assert forgotten == [mh]
        assert not await store.has(mh)
    finally:
        await store.aclose()


async def test_piri_lists_what_relay_recorded_less_what_it_forgot() -> None:
    recorded = [StoredBlob(multihash.sha2_256(data), 0, 0) for data in BLOBS[:3]]

    async def list_recorded() -> AsyncIterator[StoredBlob]:
        for blob in recorded:
            yield blob

    relay_key = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay_key.did))
        async with open_piri_store(config, signer=relay_key, list_recorded=list_recorded) as store:
            await store.delete(recorded[0].multihash)
            assert set(await listed(store)) == {blob.multihash for blob in recorded[1:]}
            assert await store.reclaim_space() == ReclaimReport(0, 0, 0)


async def test_a_collections_delete_spares_a_blob_stored_since_it_began(
    damageable_store: BlobStore,
) -> None:
    mh = multihash.sha2_256(BLOBS[0])
    await damageable_store.put(mh, BLOBS[0])
    await damageable_store.sync()
    stored_at_ms = (await listed(damageable_store))[mh].stored_at_ms
    assert not await damageable_store.delete(mh, stored_before_ms=stored_at_ms - 1)
    assert await damageable_store.get(mh) == BLOBS[0]
    # A collection that began after the put deletes it (5 s past: an upstream's
    # Last-Modified counts whole seconds, and its clock may run a little ahead).
    assert await damageable_store.delete(mh, stored_before_ms=stored_at_ms + 5_000)
    assert not await damageable_store.has(mh)
    assert mh not in await listed(damageable_store)
