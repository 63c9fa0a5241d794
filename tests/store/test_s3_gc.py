"""Garbage collection over the s3 store (moto): unreachable blob objects are deleted
upstream with their location claims; what is reachable stays and reads back."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import trio
from moto_upstream import MotoServer

from relay.bucket import GcConfig, collect_garbage
from relay.config import Config, StoreConfig
from relay.ipld import multihash
from relay.storage import open_storage


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
        await trio.sleep(0.01)  # past the zero retention

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
