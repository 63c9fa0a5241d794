"""With ``require_auth``, roundabout redirects a key only to content its buckets reach.

Objects go in through the engine (memory store, real SQLite registry), claims are added for
every blob they made (chunks, index CAR, commit CAR), and the roundabout handler is asked
with requests signed by one key or another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.bucket.engine import Engine, EngineConfig, open_engine
from relay.bucket.multipart import Multipart, UploadRequest
from relay.chunker import ChunkerConfig
from relay.http import Request, Response
from relay.ipld.cid import CAR, CID
from relay.registry import open_sqlite_registry
from relay.registry.base import Claim
from relay.roundabout.app import RoundaboutApp
from relay.roundabout.config import RoundaboutConfig, parse_roundabout
from relay.sigv4 import UNSIGNED_PAYLOAD, sign_headers
from relay.store import MemoryBlobStore

NOW = 1_741_964_966.0
HOST = "roundabout.internal:9100"
KEYS = {"alice": "alice-secret", "bob": "bob-secret"}
SMALL_CHUNKS = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=16 << 10), unixfs_width=4)
CLAIMED_AT = "https://mirror.example.net/"  # redirected to as it is: easy to check
AUTH: dict[str, Any] = {"require_auth": True}


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with (
        open_sqlite_registry(tmp_path / "registry.sqlite") as registry,
        open_engine(MemoryBlobStore(), registry, SMALL_CHUNKS) as opened,
    ):
        yield opened


def signed(target: str, access_key: str | None) -> Request:
    path, _, query = target.partition("?")
    headers: tuple[tuple[str, str], ...] = (("host", HOST),)
    if access_key is not None:
        added = sign_headers(
            "GET", HOST, path, query, [("host", HOST)],
            payload_hash=UNSIGNED_PAYLOAD, access_key=access_key, secret=KEYS[access_key],
            region="us-east-1", service="s3", now=NOW,
        )  # fmt: skip
        headers += tuple((name.lower(), value) for name, value in added)
    return Request("GET", target, path, query, headers, "1.1", None)


async def ask(
    engine: Engine, cid: CID, access_key: str | None, config: RoundaboutConfig | None = None
) -> Response:
    app = RoundaboutApp(engine.registry, config or parse_roundabout(AUTH), KEYS, clock=lambda: NOW)
    return await app.handle(signed(f"/{cid}", access_key), None)  # type: ignore[arg-type]


def redirected(response: Response, cid: CID) -> bool:
    if response.status == 302:
        assert (("location", f"{CLAIMED_AT}{cid}")) in response.headers
        return True
    assert response.status == 403, response.body
    assert isinstance(response.body, bytes)
    assert b"AccessDenied" in response.body
    return False


async def claim(engine: Engine, *cids: CID) -> None:
    await engine.registry.add_claims([Claim(cid.multihash, f"{CLAIMED_AT}{cid}") for cid in cids])


async def chunks_of(engine: Engine, bucket: str, key: str) -> list[CID]:
    plan = await engine.plan_read(bucket, key)
    return list(dict.fromkeys(span.cid for span in plan.spans))


async def index_car_of(engine: Engine, bucket: str, key: str) -> CID:
    manifest = await engine.head_object(bucket, key)
    location = await engine.registry.find_block(manifest.body.multihash)
    assert location is not None
    return CID.v1(CAR, location.blob)


async def commit_cars_of(engine: Engine, bucket: str) -> list[CID]:
    return [CID.v1(CAR, c.car) for c in await engine.bucket_log(bucket) if c.car is not None]


async def alices_object(engine: Engine, size: int = 40_000) -> list[CID]:
    """A three-chunk object in alice's bucket: its chunks, index CAR and commit CAR, claimed."""
    await engine.create_bucket("alices", owner="alice")
    await engine.put_object("alices", "photo", body(os.urandom(size)))
    chunks = await chunks_of(engine, "alices", "photo")
    assert len(chunks) == 3
    blobs = [*chunks, await index_car_of(engine, "alices", "photo")]
    blobs += await commit_cars_of(engine, "alices")
    await claim(engine, *blobs)
    return blobs


async def test_a_key_gets_its_own_chunks_and_not_another_keys(engine: Engine) -> None:
    chunks = (await alices_object(engine))[:3]
    for chunk in chunks:
        assert redirected(await ask(engine, chunk, "alice"), chunk)
        assert not redirected(await ask(engine, chunk, "bob"), chunk)


async def test_index_and_commit_cars_follow_the_same_rule(engine: Engine) -> None:
    blobs = await alices_object(engine)
    cars = blobs[3:]
    assert len(cars) == 2  # the index CAR and the one commit CAR
    for car in cars:
        assert car.codec == CAR
        assert redirected(await ask(engine, car, "alice"), car)
        assert not redirected(await ask(engine, car, "bob"), car)


async def test_a_one_chunk_object_is_its_own_body(engine: Engine) -> None:
    await engine.create_bucket("alices", owner="alice")
    await engine.put_object("alices", "note", body(b"short"))
    (chunk,) = await chunks_of(engine, "alices", "note")
    await claim(engine, chunk)
    assert redirected(await ask(engine, chunk, "alice"), chunk)
    assert not redirected(await ask(engine, chunk, "bob"), chunk)


async def test_unsigned_requests_are_still_403(engine: Engine) -> None:
    chunk = (await alices_object(engine))[0]
    response = await ask(engine, chunk, None)
    assert response.status == 403
    assert isinstance(response.body, bytes)
    assert b"AccessDenied" in response.body


async def test_a_refusal_does_not_say_whether_the_cid_is_stored(engine: Engine) -> None:
    await alices_object(engine)
    nowhere = CID.raw_sha256(hashlib.sha256(b"claimed by nobody, stored nowhere").digest())
    assert not redirected(await ask(engine, nowhere, "bob"), nowhere)


async def test_deduplicated_content_is_reachable_from_each_owners_bucket(engine: Engine) -> None:
    data = os.urandom(40_000)
    await engine.create_bucket("alices", owner="alice")
    await engine.create_bucket("bobs", owner="bob")
    await engine.put_object("alices", "x", body(data))
    await engine.put_object("bobs", "y", body(data))
    chunks = await chunks_of(engine, "alices", "x")
    await claim(engine, *chunks)
    for chunk in chunks:
        assert redirected(await ask(engine, chunk, "alice"), chunk)
        assert redirected(await ask(engine, chunk, "bob"), chunk)


async def test_a_multipart_objects_chunks_and_index_are_reachable(engine: Engine) -> None:
    await engine.create_bucket("alices", owner="alice")
    multipart = Multipart(engine)
    upload = await multipart.create("alices", "big", UploadRequest(), owner="alice")
    part = await multipart.upload_part(upload, 1, body(os.urandom(40_000)))
    await multipart.complete(upload, [(1, part.etag)])
    blobs = [*await chunks_of(engine, "alices", "big"), await index_car_of(engine, "alices", "big")]
    await claim(engine, *blobs)
    for blob in blobs:
        assert redirected(await ask(engine, blob, "alice"), blob)
        assert not redirected(await ask(engine, blob, "bob"), blob)


async def test_an_unowned_bucket_is_every_keys(engine: Engine) -> None:
    # As in S3, where a bucket with no owner answers every key.
    await engine.create_bucket("shared")
    await engine.put_object("shared", "x", body(b"for everyone"))
    (chunk,) = await chunks_of(engine, "shared", "x")
    await claim(engine, chunk)
    assert redirected(await ask(engine, chunk, "bob"), chunk)


async def test_a_deleted_object_stays_reachable_from_the_buckets_history(engine: Engine) -> None:
    chunks = (await alices_object(engine))[:3]
    await engine.delete_object("alices", "photo")
    assert redirected(await ask(engine, chunks[0], "alice"), chunks[0])


async def test_a_bucket_of_the_same_name_inherits_nothing(engine: Engine) -> None:
    chunk = (await alices_object(engine))[0]
    await engine.delete_object("alices", "photo")
    await engine.delete_bucket("alices")
    await engine.create_bucket("alices", owner="bob")
    assert not redirected(await ask(engine, chunk, "bob"), chunk)
    assert not redirected(await ask(engine, chunk, "alice"), chunk)


def grant(**fields: Any) -> RoundaboutConfig:
    return parse_roundabout(dict(AUTH, grants=[{"access_key_id": "bob", **fields}]))


async def test_a_grant_of_an_owner_opens_that_owners_content(engine: Engine) -> None:
    blobs = await alices_object(engine)
    config = grant(owners=["alice"])
    for blob in blobs:
        assert redirected(await ask(engine, blob, "bob", config), blob)
    # ... to bob only: the grant names him
    carol = parse_roundabout(dict(AUTH, grants=[{"access_key_id": "carol", "owners": ["alice"]}]))
    assert not redirected(await ask(engine, blobs[0], "bob", carol), blobs[0])


async def test_a_grant_of_a_bucket_opens_that_bucket_only(engine: Engine) -> None:
    blobs = await alices_object(engine)
    await engine.create_bucket("alices-other", owner="alice")
    await engine.put_object("alices-other", "o", body(b"other bytes"))
    (other,) = await chunks_of(engine, "alices-other", "o")
    await claim(engine, other)
    config = grant(buckets=["alices"])
    assert redirected(await ask(engine, blobs[0], "bob", config), blobs[0])
    assert not redirected(await ask(engine, other, "bob", config), other)


async def test_a_copy_is_reachable_from_its_destination_bucket(engine: Engine) -> None:
    chunks = (await alices_object(engine))[:3]
    await engine.create_bucket("alices-copies", owner="alice")
    manifest = await engine.head_object("alices", "photo")
    await engine.commit_manifest("alices-copies", dataclasses.replace(manifest, key="copy"))
    config = grant(buckets=["alices-copies"])
    for chunk in chunks:
        assert redirected(await ask(engine, chunk, "bob", config), chunk)


async def test_a_star_grant_opens_every_claim(engine: Engine) -> None:
    blobs = await alices_object(engine)
    unbucketed = CID.raw_sha256(hashlib.sha256(b"imported claim, in no bucket").digest())
    await claim(engine, unbucketed)
    for fields in ({"owners": ["*"]}, {"buckets": ["*"]}):
        for cid in (blobs[0], unbucketed):
            assert redirected(await ask(engine, cid, "bob", grant(**fields)), cid)
    assert not redirected(await ask(engine, unbucketed, "alice", grant(owners=["*"])), unbucketed)


async def test_without_require_auth_every_claim_is_answered(engine: Engine) -> None:
    chunk = (await alices_object(engine))[0]
    assert redirected(await ask(engine, chunk, None, parse_roundabout({})), chunk)
