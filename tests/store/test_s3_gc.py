"""Garbage collection over the s3 store (moto): unreachable blob objects are deleted
upstream with their location claims; what is reachable stays and reads back."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from moto_upstream import MotoServer

from relay.bucket import GcConfig, collect_garbage
from relay.config import Config, StoreConfig
from relay.ipld import multihash
from relay.storage import open_storage
from relay.store import s3 as s3_store
from relay.store.s3 import open_s3_store


async def one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_collection_deletes_unreachable_objects_upstream_and_their_claims(
    moto: MotoServer, tmp_path: Path
) -> None:
    bucket = moto.new_bucket()
    config = Config(data_dir=tmp_path, store=StoreConfig(kind="s3", s3=moto.store_config(bucket)))
    kept, gone = os.urandom(3000), os.urandom(5000)
    async with open_storage(config) as engine:
        await engine.create_bucket("b")
        await engine.put_object("b", "kept", one_piece(kept))
        await engine.put_object("b", "gone", one_piece(gone))
        await engine.delete_object("b", "gone")
        assert await engine.registry.claims_for(multihash.sha2_256(gone))
        # Past the zero retention, and past the second of the objects' Last-Modified: the
        # collection's delete spares an object that may have been stored since it began.
        await trio.sleep(1.1)

        report = await collect_garbage(
            engine, GcConfig(history_retention_seconds=0, grace_seconds=0)
        )
        assert report.blobs_swept >= 1
        listed = moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        names = {item["Key"] for item in listed}
        assert engine.store.object_key(multihash.sha2_256(gone)) not in names
        assert engine.store.object_key(multihash.sha2_256(kept)) in names
        assert await engine.registry.claims_for(multihash.sha2_256(gone)) == []
        assert await engine.read_object("b", "kept") == kept
        assert len(names) == report.blobs_listed - report.blobs_swept


async def test_a_put_deduplicated_against_an_old_object_uploads_it_again(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another host's collection sees only the object's Last-Modified: a put that
    # re-uses an object stored long ago must make it young again, by uploading it.
    config = moto.store_config(moto.new_bucket())
    data = os.urandom(3000)
    mh = multihash.sha2_256(data)
    async with open_s3_store(config) as store:
        await store.put(mh, data)
        await store.put(mh, data)  # recent: trusted after its HEAD
        assert store.statistics().blobs_written == 1
        monkeypatch.setattr(s3_store, "FRESHEN_AFTER_SECONDS", 0.0)  # now "old"
        await trio.sleep(1.1)  # a new Last-Modified second
        [before] = [blob async for blob in store.list_blobs()]
        await store.put(mh, data)
        assert store.statistics().blobs_written == 2
        [after] = [blob async for blob in store.list_blobs()]
        assert after.stored_at_ms > before.stored_at_ms
        assert not await store.delete(mh, stored_before_ms=before.stored_at_ms + 999)
        assert await store.get(mh) == data
