"""S3App driven directly: a signed Request in, a Response out, no sockets."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from relay.bucket.engine import Engine, open_engine
from relay.http import Request, Response, WriterBody
from relay.ipld import multihash
from relay.registry import open_sqlite_registry
from relay.s3.app import S3App
from relay.sigv4 import presign_url, sign_headers
from relay.store import CorruptBlob, MemoryBlobStore, StoreUnavailable

KEYS = {"alice": "alice-secret", "bob": "bob-secret"}


class Body:
    """A request body already in memory, read the way relay.http's RequestBody is."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def receive_some(self, max_bytes: int = 1 << 20) -> bytes:
        piece, self._data = self._data[:max_bytes], self._data[max_bytes:]
        return piece


def signed(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    user: str | None = "alice",
    region: str = "us-east-1",
    host: str = "relay.test",
    headers: Sequence[tuple[str, str]] = (),
    client: tuple[str, int] | None = None,
    content_length: int | None = None,
) -> Request:
    """A request SigV4-signed by ``user``'s key (unsigned when ``user`` is None), with
    ``headers`` among its signed headers and ``content_length`` defaulting to the body's."""
    path, _, query = target.partition("?")
    all_headers = [("host", host), *headers]
    if user is not None:
        all_headers += sign_headers(
            method, host, path, query, all_headers,
            payload_hash=hashlib.sha256(body).hexdigest(), access_key=user, secret=KEYS[user],
            region=region, service="s3", now=time.time(),
        )  # fmt: skip
    length = len(body) if content_length is None else content_length
    all_headers.append(("content-length", str(length)))
    lowered = tuple((name.lower(), value) for name, value in all_headers)
    return Request(method, target, path, query, lowered, "1.1", client)


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


class FlakyStore(MemoryBlobStore):
    """A memory store whose upstream can be made unreachable."""

    unreachable = False

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        if self.unreachable:
            raise StoreUnavailable("upstream GET failed after 4 attempts: connection refused")
        return await super().get(mh, offset, length, expect=expect)


def with_range(request: Request, value: str) -> Request:
    headers = (*request.headers, ("range", value))
    return Request(
        request.method, request.target, request.path, request.query, headers, "1.1", None
    )


async def get_range(app: S3App, target: str, value: str) -> Response:
    return await app.handle(with_range(signed("GET", target), value), Body(b""))  # type: ignore[arg-type]


CHUNK = 1 << 20
TWO_CHUNKS = bytes(range(256)) * (CHUNK // 256) + b"second chunk" * 1000


async def put_two_chunks(app: S3App) -> None:
    assert (await call(app, "PUT", "/photos")).status == 200
    assert (await call(app, "PUT", "/photos/big.bin", TWO_CHUNKS)).status == 200


async def assert_internal_error(response: Response) -> None:
    assert response.status == 500
    body = await body_of(response)
    assert b"<Code>InternalError</Code>" in body
    assert b"blob" not in body  # nothing about the store leaks: no blob name, no cause
    assert b"multihash" not in body


async def test_a_corrupt_first_chunk_is_an_error_before_any_status_line(
    engine: Engine, store: MemoryBlobStore
) -> None:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/photos")).status == 200
    data = bytes(range(256)) * 1000  # one chunk: its blob is named by sha256(data)
    assert (await call(app, "PUT", "/photos/cat.jpg", data)).status == 200
    store.blobs[multihash.sha2_256(data)] = b"not the bytes" + data[13:]
    await assert_internal_error(await call(app, "GET", "/photos/cat.jpg"))
    # The read forgot the damaged chunk: the same bytes under another key store it again,
    # and both keys read back (they name the same chunk).
    assert (await call(app, "PUT", "/photos/copy.jpg", data)).status == 200
    for key in ("cat.jpg", "copy.jpg"):
        response = await call(app, "GET", f"/photos/{key}")
        assert response.status == 200
        assert await body_of(response) == data


async def test_a_missing_first_chunk_is_an_error_before_any_status_line(
    engine: Engine, store: MemoryBlobStore
) -> None:
    app = S3App(engine, KEYS)
    await put_two_chunks(app)
    del store.blobs[multihash.sha2_256(TWO_CHUNKS[:CHUNK])]
    await assert_internal_error(await call(app, "GET", "/photos/big.bin"))


async def test_a_ranged_get_checks_the_first_chunk_of_its_range(
    engine: Engine, store: MemoryBlobStore
) -> None:
    app = S3App(engine, KEYS)
    await put_two_chunks(app)
    second = multihash.sha2_256(TWO_CHUNKS[CHUNK:])
    store.blobs[second] = b"X" + TWO_CHUNKS[CHUNK + 1 :]
    await assert_internal_error(await get_range(app, "/photos/big.bin", f"bytes={CHUNK + 5}-"))
    store.blobs[second] = b"X" + TWO_CHUNKS[CHUNK + 1 :]  # damaged again (the read forgot it)
    inside_the_first = await get_range(app, "/photos/big.bin", "bytes=10-19")
    assert inside_the_first.status == 206
    assert await body_of(inside_the_first) == TWO_CHUNKS[10:20]


async def test_past_the_first_chunk_a_failed_chunk_aborts_the_body(
    engine: Engine, store: MemoryBlobStore
) -> None:
    app = S3App(engine, KEYS)
    await put_two_chunks(app)
    store.blobs[multihash.sha2_256(TWO_CHUNKS[CHUNK:])] = b"X" + TWO_CHUNKS[CHUNK + 1 :]
    response = await call(app, "GET", "/photos/big.bin")
    assert response.status == 200  # the first chunk was sound: the head goes out ...
    with pytest.raises(CorruptBlob):  # ... and the body can only be cut short
        await body_of(response)


async def test_the_first_chunk_is_fetched_once(engine: Engine, store: MemoryBlobStore) -> None:
    app = S3App(engine, KEYS)
    await put_two_chunks(app)
    await body_of(await call(app, "GET", "/photos/big.bin"))  # the file node is cached now
    reads = store.statistics().reads
    response = await call(app, "GET", "/photos/big.bin")
    assert await body_of(response) == TWO_CHUNKS
    assert store.statistics().reads - reads == 2  # one per chunk, the first one included


async def test_a_zero_length_object_reads_no_chunk(engine: Engine, store: MemoryBlobStore) -> None:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/photos")).status == 200
    assert (await call(app, "PUT", "/photos/empty", b"")).status == 200
    store.blobs.clear()
    response = await call(app, "GET", "/photos/empty")
    assert response.status == 200
    assert await body_of(response) == b""


async def test_an_unreachable_store_is_a_503_before_any_status_line(tmp_path: Path) -> None:
    store = FlakyStore()
    async with (
        open_sqlite_registry(tmp_path / "r.sqlite") as registry,
        open_engine(store, registry) as engine,
    ):
        app = S3App(engine, KEYS)
        assert (await call(app, "PUT", "/photos")).status == 200
        assert (await call(app, "PUT", "/photos/cat.jpg", b"meow")).status == 200
        store.unreachable = True
        response = await call(app, "GET", "/photos/cat.jpg")
        assert response.status == 503
        body = await body_of(response)
        assert b"<Code>ServiceUnavailable</Code>" in body
        assert b"refused" not in body
        assert b"upstream" not in body


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


# -- the credential scope's region --------------------------------------------------------


@pytest.mark.parametrize("region", ["eu-west-1", "x" * 50, "US-EAST-1"])
async def test_a_header_signed_for_another_region_is_malformed(engine: Engine, region: str) -> None:
    app = S3App(engine, KEYS, region="us-east-1")
    response = await call(app, "PUT", "/photos", region=region)
    assert response.status == 400
    document = await body_of(response)
    assert b"<Code>AuthorizationHeaderMalformed</Code>" in document
    assert b"expecting 'us-east-1'" in document
    # The expected region as its own element: SDKs re-sign with it, as against AWS.
    assert b"<Region>us-east-1</Region>" in document
    assert (await call(app, "HEAD", "/photos")).status == 404  # nothing was created


async def test_a_presigned_url_for_another_region_is_refused_as_aws_does(engine: Engine) -> None:
    app = S3App(engine, KEYS, region="eu-central-1")
    assert (await call(app, "PUT", "/photos", region="eu-central-1")).status == 200
    assert (await call(app, "PUT", "/photos/a", b"abc", region="eu-central-1")).status == 200

    def presigned(region: str) -> str:
        return presign_url(
            "GET", "http", "relay.test", "/photos/a", [],
            access_key="alice", secret=KEYS["alice"], region=region, service="s3",
            now=time.time(), expires=60,
        )  # fmt: skip

    urls = {region: presigned(region) for region in ("us-east-1", "eu-central-1")}

    async def get(url: str) -> Response:
        target = url.removeprefix("http://relay.test")
        path, _, query = target.partition("?")
        request = Request("GET", target, path, query, (("host", "relay.test"),), "1.1", None)
        return await app.handle(request, Body(b""))  # type: ignore[arg-type]

    wrong = await get(urls["us-east-1"])
    assert wrong.status == 400
    document = await body_of(wrong)
    # AWS answers a presigned URL's wrong region with this code, not the header one.
    assert b"<Code>AuthorizationQueryParametersError</Code>" in document
    assert b"the region 'us-east-1' is wrong; expecting 'eu-central-1'" in document
    assert b"<Region>eu-central-1</Region>" in document
    right = await get(urls["eu-central-1"])
    assert right.status == 200
    assert await body_of(right) == b"abc"


# -- writes to one key are serialised ------------------------------------------------------


async def test_tagging_racing_puts_of_the_same_key_is_ordered_never_a_retry(
    engine: Engine,
) -> None:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/photos")).status == 200
    assert (await call(app, "PUT", "/photos/cat", b"v0")).status == 200
    tagging = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    statuses: list[tuple[str, int]] = []

    async def put(round_number: int) -> None:
        response = await call(app, "PUT", "/photos/cat", b"v%d" % round_number)
        statuses.append(("put", response.status))

    async def tag() -> None:
        response = await call(app, "PUT", "/photos/cat?tagging", tagging)
        statuses.append(("tag", response.status))

    for round_number in range(1, 41):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(put, round_number)
                nursery.start_soon(tag)
    assert len(statuses) == 40 * 6
    assert all(status == 200 for _, status in statuses), statuses
    # The last write of the last round decided the object; whichever it was, the object
    # is whole and its tags are those the order of writes gives (a put clears them).
    final = await call(app, "GET", "/photos/cat?tagging")
    assert final.status == 200
    assert await body_of(await call(app, "GET", "/photos/cat")) == b"v40"


async def test_tagging_a_missing_key_is_no_such_key(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/photos")).status == 200
    response = await call(
        app, "PUT", "/photos/none?tagging", b"<Tagging><TagSet></TagSet></Tagging>"
    )
    assert response.status == 404
    assert b"<Code>NoSuchKey</Code>" in await body_of(response)


# SigV2 and virtual-hosted addressing (issue 19).
DOMAIN = "s3.relay.test"


def sigv4_request(method: str, host: str, target: str, body: bytes = b"") -> Request:
    return signed(method, target, body, host=host)


def sigv2_request(
    method: str, host: str, target: str, body: bytes = b"", *, auth_path: str | None = None
) -> Request:
    """Signed by botocore's SigV2 signer, as boto3 signs with ``signature_version="s3"``."""
    from botocore.auth import HmacV1Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method=method, url=f"http://{host}{target}", headers={"Host": host}, data=body
    )
    request.auth_path = auth_path
    HmacV1Auth(Credentials("alice", KEYS["alice"])).add_auth(request)
    path, _, query = target.partition("?")
    headers = [(n.lower(), v) for n, v in request.headers.items()]
    headers.append(("content-length", str(len(body))))
    return Request(method, target, path, query, tuple(headers), "1.1", None)


async def send(app: S3App, request: Request, body: bytes = b"") -> Response:
    return await app.handle(request, Body(body))  # type: ignore[arg-type]


async def test_virtual_hosted_and_path_style_reach_the_same_bucket(engine: Engine) -> None:
    app = S3App(engine, KEYS, domains=[DOMAIN])
    vhost = f"photos.{DOMAIN}:9000"
    assert (await send(app, sigv4_request("PUT", vhost, "/"))).status == 200
    put = await send(app, sigv4_request("PUT", vhost, "/a/b c", b"hello"), b"hello")
    assert put.status == 200
    # Path-style on the bare domain and on any other host: the same object.
    for host in (f"{DOMAIN}:9000", "127.0.0.1:9000"):
        got = await send(app, sigv4_request("GET", host, "/photos/a/b%20c"))
        assert got.status == 200
        assert await body_of(got) == b"hello"
    listing = await body_of(await send(app, sigv4_request("GET", vhost, "/?list-type=2")))
    assert b"<Key>a/b c</Key>" in listing
    # Without domains the Host is ignored: the path's first segment is the bucket.
    plain = S3App(engine, KEYS)
    missing = await send(plain, sigv4_request("GET", vhost, "/a/b%20c"))
    assert missing.status == 404


async def test_sigv2_header_signed_requests_are_served(engine: Engine) -> None:
    app = S3App(engine, KEYS, domains=[DOMAIN])
    assert (await send(app, sigv2_request("PUT", DOMAIN, "/photos"))).status == 200
    put = await send(app, sigv2_request("PUT", DOMAIN, "/photos/k", b"v2 body"), b"v2 body")
    assert put.status == 200
    vhost = await send(app, sigv2_request("GET", f"photos.{DOMAIN}", "/k", auth_path="/photos/k"))
    assert vhost.status == 200
    assert await body_of(vhost) == b"v2 body"
    acl = await send(app, sigv2_request("GET", DOMAIN, "/photos?acl"))
    assert acl.status == 200


async def test_sigv2_presigned_urls_from_boto3_are_served(engine: Engine) -> None:
    import boto3
    from botocore.config import Config

    app = S3App(engine, KEYS, domains=[DOMAIN])
    assert (await send(app, sigv4_request("PUT", DOMAIN, "/photos"))).status == 200
    assert (await send(app, sigv4_request("PUT", DOMAIN, "/photos/k", b"x"), b"x")).status == 200
    for style in ("path", "virtual"):
        client = boto3.session.Session(
            aws_access_key_id="alice", aws_secret_access_key=KEYS["alice"], region_name="us-east-1"
        ).client(
            "s3", endpoint_url=f"http://{DOMAIN}", config=Config(s3={"addressing_style": style})
        )
        url = client.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "k"})
        assert "AWSAccessKeyId=alice" in url
        host, _, target = url.removeprefix("http://").partition("/")
        path, _, query = ("/" + target).partition("?")
        request = Request("GET", "/" + target, path, query, (("host", host),), "1.1", None)
        got = await send(app, request)
        assert got.status == 200, style
        assert await body_of(got) == b"x"


async def test_a_tampered_sigv2_request_gets_signature_does_not_match(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    request = sigv2_request("GET", DOMAIN, "/photos/k")
    tampered = Request("GET", "/photos/other", "/photos/other", "", request.headers, "1.1", None)
    response = await send(app, tampered)
    assert response.status == 403
    document = await body_of(response)
    assert b"<Code>SignatureDoesNotMatch</Code>" in document
    assert b"<StringToSign>GET\n\n\n" in document
    assert b"/photos/other</StringToSign>" in document
    assert b"anonymous" not in document
