"""Opening a registry file made by an older relay: version 1 (before the reach tables) and
version 2 (before completed uploads were remembered)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.bucket import Multipart, UploadRequest
from relay.bucket.engine import EngineConfig, open_engine
from relay.chunker import ChunkerConfig
from relay.ipld.cid import CID
from relay.registry import open_sqlite_registry
from relay.registry.base import RegistryError
from relay.registry.sqlite import SCHEMA_VERSION
from relay.store import MemoryBlobStore

SMALL_CHUNKS = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=16 << 10), unixfs_width=4)
# Every table and index a version 1 file has (relay before the reach tables).
VERSION_1_SCHEMA = {
    "meta", "buckets", "commits", "block_locations", "multipart_uploads",
    "multipart_uploads_by_key", "multipart_parts", "claims",
}  # fmt: skip


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def downgrade_to_version_1(path: Path) -> None:
    """What a version 1 relay left: the same tables, without the reach tables."""
    db = sqlite3.connect(path)
    try:
        db.executescript(
            "DROP INDEX bucket_reach_by_content; DROP TABLE bucket_reach; DROP TABLE body_parts;"
            " DROP INDEX completed_uploads_by_age; DROP TABLE completed_uploads;"
            " DROP TABLE bucket_settings;"
            " DROP INDEX block_locations_by_blob; DROP INDEX commits_by_time; DROP TABLE pins;"
            " UPDATE meta SET value = '1' WHERE key = 'schema_version';"
        )
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {name for name in names if not name.startswith("sqlite_")} == VERSION_1_SCHEMA
    finally:
        db.close()


def schema_version(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        db.close()


async def test_a_version_1_registry_is_upgraded_and_its_objects_backfilled(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    store = MemoryBlobStore()
    async with (
        open_sqlite_registry(path) as registry,
        open_engine(store, registry, SMALL_CHUNKS) as engine,
    ):
        await engine.create_bucket("alices", owner="alice")
        await engine.create_bucket("empty", owner="alice")
        await engine.put_object("alices", "big", body(os.urandom(40_000)))
        await engine.put_object("alices", "small", body(b"one chunk"))
        await engine.put_object("alices", "gone", body(b"deleted before the upgrade"))
        await engine.delete_object("alices", "gone")
        spans = (await engine.plan_read("alices", "big")).spans
        chunks = [span.cid.multihash for span in spans]
        manifest = await engine.head_object("alices", "big")
        index = await registry.find_block(manifest.body.multihash)
        assert index is not None
        small = (await engine.head_object("alices", "small")).body.multihash
        gone = CID.raw_sha256(hashlib.sha256(b"deleted before the upgrade").digest())
        cars = [c.car for c in await engine.bucket_log("alices") if c.car is not None]
    downgrade_to_version_1(path)

    async with open_sqlite_registry(path) as registry:
        assert schema_version(path) == str(SCHEMA_VERSION) == "5"
        assert await registry.reach_backfill_pending()
        # commit CARs come from the commit log at once; objects need the blob store
        for car in cars:
            assert await registry.content_reachable(car, owners={"alice"})
        assert not await registry.content_reachable(chunks[0], owners={"alice"})
        async with open_engine(store, registry, SMALL_CHUNKS):
            pass  # the backfill runs as the engine opens
        assert not await registry.reach_backfill_pending()
        for blob in [*chunks, index.blob, small, *cars]:
            assert await registry.content_reachable(blob, owners={"alice"})
            assert not await registry.content_reachable(blob, owners={"bob"})
        # the stated limit: an object deleted before the upgrade is not walked
        assert not await registry.content_reachable(gone.multihash, owners={"alice"})


async def test_opening_an_upgraded_registry_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    async with open_sqlite_registry(path) as registry:
        assert not await registry.reach_backfill_pending()  # a new file has nothing to fill
    async with open_sqlite_registry(path) as registry:
        assert not await registry.reach_backfill_pending()
    assert schema_version(path) == "5"


def downgrade_to_version_2(path: Path) -> None:
    """What a version 2 relay left: no completed_uploads table."""
    db = sqlite3.connect(path)
    try:
        db.executescript(
            "DROP INDEX completed_uploads_by_age; DROP TABLE completed_uploads;"
            " DROP TABLE bucket_settings;"
            " DROP INDEX block_locations_by_blob; DROP INDEX commits_by_time; DROP TABLE pins;"
            " UPDATE meta SET value = '2' WHERE key = 'schema_version';"
        )
    finally:
        db.close()


async def test_a_version_2_registry_is_upgraded_and_its_open_uploads_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.sqlite"
    store = MemoryBlobStore()
    async with open_sqlite_registry(path) as registry, open_engine(store, registry) as engine:
        await engine.create_bucket("alices", owner="alice")
        uploads = Multipart(engine)
        upload = await uploads.create("alices", "k", UploadRequest(), owner="alice")
        part = await uploads.upload_part(upload, 1, body(b"part one"))
    downgrade_to_version_2(path)

    async with open_sqlite_registry(path) as registry, open_engine(store, registry) as engine:
        assert schema_version(path) == "5"
        uploads = Multipart(engine)
        upload = await uploads.get("alices", "k", upload.upload_id)
        manifest = await uploads.complete(upload, [(1, part.etag)])
        again, _ = await uploads.completed("alices", "k", upload.upload_id, [(1, part.etag)])
        assert again == manifest


async def test_a_registry_from_a_newer_relay_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    async with open_sqlite_registry(path):
        pass
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(RegistryError, match="schema version 99"):
        async with open_sqlite_registry(path):
            pass
