from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bucket_helpers import body_of

from relay.bucket.engine import Engine, EngineConfig, open_engine
from relay.bucket.multipart import (
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    Multipart,
    NoSuchUpload,
    UploadRequest,
)
from relay.chunker import ChunkerConfig
from relay.registry.base import PartRecord
from relay.registry.sqlite import SqliteRegistry
from relay.store import MemoryBlobStore

MIB = 1 << 20


async def upload_parts(multipart: Multipart, bucket: str, key: str, parts: list[bytes]):  # type: ignore[no-untyped-def]
    upload = await multipart.create(bucket, key, UploadRequest(content_type="text/x"))
    etags = []
    for number, data in enumerate(parts, start=1):
        part = await multipart.upload_part(upload, number, body_of(data, 100_000))
        etags.append((number, part.etag))
    return upload, etags


async def test_aligned_parts_give_the_same_unixfs_root_as_one_put(engine: Engine) -> None:
    await engine.create_bucket("b")
    multipart = Multipart(engine)
    chunk = engine.config.chunker.chunk_size_bytes
    data = os.urandom(5 * MIB + 3 * chunk + 777)
    parts = [data[: 5 * MIB], data[5 * MIB :]]  # 5 MiB is a multiple of the chunk size
    upload, etags = await upload_parts(multipart, "b", "mp", parts)
    manifest = await multipart.complete(upload, etags)
    single = await engine.put_object("b", "single", body_of(data))
    assert manifest.body == single.body
    assert manifest.size == len(data)
    assert manifest.blake3 == single.blake3
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert manifest.etag == f"{hashlib.md5(md5s).hexdigest()}-2"
    assert manifest.part_sizes == (5 * MIB, len(parts[1]))
    assert manifest.content_type == "text/x"
    assert await engine.read_object("b", "mp") == data
    with pytest.raises(NoSuchUpload):
        await multipart.get("b", "mp", upload.upload_id)


async def test_unaligned_parts_still_read_back_exactly(engine: Engine) -> None:
    await engine.create_bucket("b")
    multipart = Multipart(engine)
    parts = [os.urandom(5 * MIB + 123), os.urandom(5 * MIB + 1), os.urandom(10)]
    upload, etags = await upload_parts(multipart, "b", "k", parts)
    await multipart.complete(upload, etags)
    data = b"".join(parts)
    assert await engine.read_object("b", "k") == data
    async with engine.open_object("b", "k", first=5 * MIB, last=5 * MIB + 500) as stream:
        got = b"".join([piece async for piece in stream.chunks])
    assert got == data[5 * MIB : 5 * MIB + 501]


async def test_complete_checks_the_part_list(engine: Engine) -> None:
    await engine.create_bucket("b")
    multipart = Multipart(engine)
    upload, etags = await upload_parts(multipart, "b", "k", [os.urandom(100), os.urandom(100)])
    with pytest.raises(EntityTooSmall):
        await multipart.complete(upload, etags)
    with pytest.raises(InvalidPartOrder):
        await multipart.complete(upload, list(reversed(etags)))
    with pytest.raises(InvalidPart):
        await multipart.complete(upload, [(1, "0" * 32)])
    with pytest.raises(InvalidPart):
        await multipart.complete(upload, [(3, etags[0][1])])
    manifest = await multipart.complete(upload, etags[1:])  # a single (last) part may be small
    assert manifest.size == 100


async def test_a_big_object_skips_the_blake3_digest_instead_of_guessing(engine: Engine) -> None:
    await engine.create_bucket("b")
    multipart = Multipart(engine, cid_budget_bytes=1000)
    upload, etags = await upload_parts(multipart, "b", "k", [os.urandom(2000)])
    manifest = await multipart.complete(upload, etags)
    assert manifest.blake3 is None
    assert manifest.content_cid is None


async def test_abort_forgets_the_upload_and_its_parts(engine: Engine) -> None:
    await engine.create_bucket("b")
    multipart = Multipart(engine)
    upload, _ = await upload_parts(multipart, "b", "k", [b"x"])
    assert [u.upload_id for u in await multipart.list_uploads("b")] == [upload.upload_id]
    await multipart.abort("b", "k", upload.upload_id)
    with pytest.raises(NoSuchUpload):
        await multipart.abort("b", "k", upload.upload_id)
    assert await multipart.list_uploads("b") == []
    with pytest.raises(NoSuchUpload):
        await multipart.upload_part(upload, 2, body_of(b"late"))


class VolatileMemoryStore(MemoryBlobStore):
    """The store contract taken literally: a put is volatile until a sync; ``crash()``
    forgets every blob put since the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.unsynced: set[bytes] = set()

    async def put(self, mh: bytes, data: bytes) -> None:
        new = mh not in self.blobs
        await super().put(mh, data)
        if new:
            self.unsynced.add(mh)

    async def sync(self) -> None:
        await super().sync()
        self.unsynced.clear()

    def crash(self) -> None:
        for mh in self.unsynced:
            del self.blobs[mh]
        self.unsynced.clear()


class CrashAfterEachPartRow(SqliteRegistry):
    """The process dies the moment a part's row is committed (the registry is durable)."""

    def __init__(self, path: Path, store: VolatileMemoryStore) -> None:
        super().__init__(path)
        self.store = store

    async def put_part(self, part: PartRecord) -> None:
        await super().put_part(part)
        self.store.crash()


@pytest.fixture
async def crashing_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    store = VolatileMemoryStore()
    registry = CrashAfterEachPartRow(tmp_path / "registry.sqlite", store)
    try:
        config = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=16 << 10), unixfs_width=4)
        async with open_engine(store, registry, config) as engine:
            yield engine
    finally:
        await registry.aclose()


async def test_a_part_row_never_names_chunks_a_crash_can_lose(crashing_engine: Engine) -> None:
    engine = crashing_engine
    await engine.create_bucket("b")
    multipart = Multipart(engine)
    parts = [os.urandom(5 * MIB + 321), os.urandom(70_000)]
    upload, etags = await upload_parts(multipart, "b", "k", parts)
    await multipart.complete(upload, etags)
    assert await engine.read_object("b", "k") == b"".join(parts)


async def test_a_copied_part_row_never_names_chunks_a_crash_can_lose(
    crashing_engine: Engine,
) -> None:
    engine = crashing_engine
    await engine.create_bucket("b")
    source = os.urandom(5 * MIB + 100_000)
    manifest = await engine.put_object("b", "source", body_of(source))  # committed: synced
    multipart = Multipart(engine)
    upload = await multipart.create("b", "k", UploadRequest())
    chunk = engine.config.chunker.chunk_size_bytes
    ranges = [(chunk // 3, chunk // 3 + 5 * MIB), (7, chunk + 11)]  # unaligned: new edges
    etags = []
    for number, (start, end) in enumerate(ranges, start=1):
        part = await multipart.upload_part_copy(upload, number, manifest, start, end)
        etags.append((number, part.etag))
    await multipart.complete(upload, etags)
    assert await engine.read_object("b", "k") == b"".join(source[s:e] for s, e in ranges)
