"""S3App driven directly: a signed Request in, a Response out, no sockets."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.bucket.engine import Engine, open_engine
from relay.http import Request, Response, WriterBody
from relay.ipld import multihash
from relay.registry import open_sqlite_registry
from relay.s3.app import S3App
from relay.sigv4 import sign_headers
from relay.store import CorruptBlob, MemoryBlobStore

KEYS = {"alice": "alice-secret", "bob": "bob-secret"}


class Body:
    """A request body already in memory, read the way relay.http's RequestBody is."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def receive_some(self, max_bytes: int = 1 << 20) -> bytes:
        piece, self._data = self._data[:max_bytes], self._data[max_bytes:]
        return piece


def signed(method: str, target: str, body: bytes = b"", *, user: str = "alice") -> Request:
    path, _, query = target.partition("?")
    headers = [("host", "relay.test")]
    headers += sign_headers(
        method, "relay.test", path, query, headers,
        payload_hash=hashlib.sha256(body).hexdigest(), access_key=user, secret=KEYS[user],
        region="us-east-1", service="s3", now=time.time(),
    )  # fmt: skip
    headers.append(("content-length", str(len(body))))
    lowered = tuple((name.lower(), value) for name, value in headers)
    return Request(method, target, path, query, lowered, "1.1", None)


async def call(app: S3App, method: str, target: str, body: bytes = b"", **kw: Any) -> Response:
    return await app.handle(signed(method, target, body, **kw), Body(body))  # type: ignore[arg-type]


async def body_of(response: Response) -> bytes:
    if isinstance(response.body, bytes):
        return response.body
    assert isinstance(response.body, WriterBody)
    parts: list[bytes] = []

    async def send(piece: bytes) -> None:
        parts.append(piece)

    await response.body.write(send)
    return b"".join(parts)


@pytest.fixture
def store() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
async def engine(tmp_path: Path, store: MemoryBlobStore) -> AsyncIterator[Engine]:
    async with (
        open_sqlite_registry(tmp_path / "r.sqlite") as registry,
        open_engine(store, registry) as engine,
    ):
        yield engine


async def test_a_corrupt_chunk_fails_the_get_instead_of_serving_it(
    engine: Engine, store: MemoryBlobStore
) -> None:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/photos")).status == 200
    data = bytes(range(256)) * 1000  # one chunk: its blob is named by sha256(data)
    assert (await call(app, "PUT", "/photos/cat.jpg", data)).status == 200
    store.blobs[multihash.sha2_256(data)] = b"not the bytes" + data[13:]
    response = await call(app, "GET", "/photos/cat.jpg")
    assert response.status == 200  # the head goes out; the body then fails, never lies
    with pytest.raises(CorruptBlob):
        await body_of(response)


async def test_buckets_belong_to_the_credential_that_made_them(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/alices", user="alice")).status == 200
    listing = await body_of(await call(app, "GET", "/", user="bob"))
    assert b"alices" not in listing
    assert b"alices" in await body_of(await call(app, "GET", "/", user="alice"))
    denied = await call(app, "GET", "/alices?list-type=2", user="bob")
    assert denied.status == 403
    assert b"<Code>AccessDenied</Code>" in await body_of(denied)
    taken = await call(app, "PUT", "/alices", user="bob")
    assert taken.status == 409
    assert b"<Code>BucketAlreadyExists</Code>" in await body_of(taken)


async def test_every_response_carries_a_request_id_and_errors_are_xml(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    for response in (
        await call(app, "GET", "/"),
        await call(app, "GET", "/missing/key"),
        await app.handle(
            Request("GET", "/", "/", "", (("host", "h"),), "1.1", None),
            Body(b""),  # type: ignore[arg-type]
        ),
    ):
        assert dict(response.headers)["x-amz-request-id"]
    missing = await call(app, "GET", "/missing/key")
    assert missing.status == 404
    document = await body_of(missing)
    assert b"<Code>NoSuchBucket</Code>" in document
    assert b"<Resource>/missing/key</Resource>" in document
    assert b"<RequestId>" in document
