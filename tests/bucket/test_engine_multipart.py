from __future__ import annotations

import hashlib
import os

import pytest
from bucket_helpers import body_of

from relay.bucket.engine import Engine
from relay.bucket.multipart import (
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    Multipart,
    NoSuchUpload,
    UploadRequest,
)

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
