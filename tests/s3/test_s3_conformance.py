"""Answers a conformance run found differing from S3's, each driven through S3App."""

from __future__ import annotations

import base64
import hashlib
import zlib

import botocore.session
import h11
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from relay.bucket import Multipart, UploadRequest
from relay.bucket.engine import Engine
from relay.http import Request, Response
from relay.http.messages import request_from_h11
from relay.s3 import multipart as s3_multipart
from relay.s3.app import S3App
from tests.s3.test_s3_app import KEYS, Body, body_of, signed

PRIVATE_ACL = (
    b'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Owner><ID>alice</ID></Owner><AccessControlList>%s</AccessControlList>"
    b"</AccessControlPolicy>"
)
OWNER_FULL_CONTROL = (
    b'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    b' xsi:type="CanonicalUser"><ID>alice</ID></Grantee>'
    b"<Permission>FULL_CONTROL</Permission></Grant>"
)


async def send(
    app: S3App,
    method: str,
    target: str,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """A request signed with ``headers`` among its signed headers."""
    request = signed(method, target, body, region=app.region, headers=headers or ())
    return await app.handle(request, Body(body))  # type: ignore[arg-type]


async def ok(app: S3App, method: str, target: str, body: bytes = b"") -> bytes:
    response = await send(app, method, target, body)
    assert response.status in (200, 204), await body_of(response)
    return await body_of(response)


async def test_max_keys_zero_is_an_empty_page_that_is_not_truncated(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a", b"x")
    for target in ("/photos?max-keys=0", "/photos?list-type=2&max-keys=0"):
        listing = await ok(app, "GET", target)
        assert b"<IsTruncated>false</IsTruncated>" in listing
        assert b"<Contents>" not in listing
        assert b"<NextContinuationToken>" not in listing


async def test_only_url_encoding_type_encodes_and_v1_never_encodes_its_prefix(
    engine: Engine,
) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a%0Ab", b"x")
    plain = await ok(app, "GET", "/photos?prefix=a%0A")
    assert b"<Prefix>a\nb</Prefix>" not in plain
    assert b"<Prefix>a\n</Prefix>" in plain
    assert b"<Key>a\nb</Key>" in plain
    # botocore asks every v1 listing for url encoding and decodes all but the Prefix.
    encoded = await ok(app, "GET", "/photos?prefix=a%0A&encoding-type=url")
    assert b"<Prefix>a\n</Prefix>" in encoded
    assert b"<Key>a%0Ab</Key>" in encoded
    v2 = await ok(app, "GET", "/photos?list-type=2&prefix=a%0A&encoding-type=url")
    assert b"<Prefix>a%0A</Prefix>" in v2
    assert b"<Key>a%0Ab</Key>" in v2
    v2_plain = await ok(app, "GET", "/photos?list-type=2&prefix=a%0A")
    assert b"<Prefix>a\n</Prefix>" in v2_plain
    assert b"<Key>a\nb</Key>" in v2_plain


async def test_multipart_uploads_are_url_encoded_only_when_asked(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "POST", "/photos/a%0Ab?uploads")
    plain = await ok(app, "GET", "/photos?uploads&prefix=a%0A")
    assert b"<Key>a\nb</Key>" in plain
    assert b"<Prefix>a\n</Prefix>" in plain
    encoded = await ok(app, "GET", "/photos?uploads&prefix=a%0A&encoding-type=url")
    assert b"<Key>a%0Ab</Key>" in encoded
    assert b"<Prefix>a%0A</Prefix>" in encoded
    assert b"<EncodingType>url</EncodingType>" in encoded


async def test_max_uploads_zero_is_an_empty_page_that_is_not_truncated(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "POST", "/photos/a?uploads")
    listing = await ok(app, "GET", "/photos?uploads&max-uploads=0")
    assert b"<IsTruncated>false</IsTruncated>" in listing
    assert b"<Upload>" not in listing


async def test_an_empty_continuation_token_starts_the_listing(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a", b"x")
    listing = await ok(app, "GET", "/photos?list-type=2&continuation-token=")
    assert b"<Key>a</Key>" in listing


async def test_list_buckets_pages_and_filters(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    for name in ("cats", "apples", "bees", "cows"):
        await ok(app, "PUT", f"/{name}")
    first = await ok(app, "GET", "/?max-buckets=2")
    assert first.count(b"<Bucket>") == 2
    assert b"<Name>apples</Name>" in first
    assert b"<Name>bees</Name>" in first
    token = first.split(b"<ContinuationToken>")[1].split(b"</ContinuationToken>")[0]
    rest = await ok(app, "GET", f"/?max-buckets=2&continuation-token={token.decode()}")
    assert b"<Name>cats</Name>" in rest
    assert b"<Name>cows</Name>" in rest
    assert b"<ContinuationToken>" not in rest
    by_prefix = await ok(app, "GET", "/?prefix=c")
    assert by_prefix.count(b"<Bucket>") == 2
    assert b"<Prefix>c</Prefix>" in by_prefix
    assert (await ok(app, "GET", "/?bucket-region=us-east-1")).count(b"<Bucket>") == 4
    assert b"<Bucket>" not in await ok(app, "GET", "/?bucket-region=eu-west-1")
    assert (await send(app, "GET", "/?max-buckets=0")).status == 400


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("deflate, gzip", "deflate, gzip"),
        ("gzip,deflate", "gzip,deflate"),
        ("aws-chunked, deflate, gzip", "deflate, gzip"),
        ("deflate, aws-chunked, gzip", "deflate, gzip"),
    ],
)
async def test_content_encoding_comes_back_as_sent(engine: Engine, sent: str, stored: str) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    put = await send(app, "PUT", "/photos/a", b"x", [("content-encoding", sent)])
    assert put.status == 200
    head = await send(app, "HEAD", "/photos/a")
    assert dict(head.headers)["content-encoding"] == stored


async def test_tags_are_listed_by_key(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a", b"x")
    names = ["zebra", "b", "apple-long-name", "m", "aa"]
    tag_set = "".join(f"<Tag><Key>{n}</Key><Value>v</Value></Tag>" for n in names)
    await ok(
        app, "PUT", "/photos/a?tagging", f"<Tagging><TagSet>{tag_set}</TagSet></Tagging>".encode()
    )
    document = await ok(app, "GET", "/photos/a?tagging")
    keys = [part.split(b"</Key>")[0].decode() for part in document.split(b"<Key>")[1:]]
    assert keys == sorted(names)


async def test_an_invalid_canned_acl_is_invalid_argument(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a", b"x")
    for method, target in (("PUT", "/photos/a?acl"), ("PUT", "/photos?acl"), ("PUT", "/new")):
        response = await send(app, method, target, headers=[("x-amz-acl", "not-an-acl")])
        assert response.status == 400
        assert b"<Code>InvalidArgument</Code>" in await body_of(response)
    public = await send(app, "PUT", "/photos/a?acl", headers=[("x-amz-acl", "public-read")])
    assert public.status == 200
    assert b"AllUsers" in await ok(app, "GET", "/photos/a?acl")
    assert (await send(app, "HEAD", "/new")).status == 404


async def test_an_acl_without_the_owners_grant_is_refused_not_ignored(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a", b"x")
    for target in ("/photos/a?acl", "/photos?acl"):
        empty = await send(app, "PUT", target, PRIVATE_ACL % b"")
        assert empty.status == 400
        assert b"<Code>MalformedACLError</Code>" in await body_of(empty)
        assert (await send(app, "PUT", target, PRIVATE_ACL % OWNER_FULL_CONTROL)).status == 200


async def test_a_presigned_url_valid_for_zero_seconds_has_expired(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/a", b"x")
    session = botocore.session.get_session()
    client = session.create_client(
        "s3", region_name="us-east-1", endpoint_url="http://relay.test",
        aws_access_key_id="alice", aws_secret_access_key=KEYS["alice"],
        config=Config(signature_version="s3v4"),
    )  # fmt: skip
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "photos", "Key": "a"}, ExpiresIn=0
    )
    target = url.removeprefix("http://relay.test")
    path, _, query = target.partition("?")
    request = Request("GET", target, path, query, (("host", "relay.test"),), "1.1", None)
    response = await app.handle(request, Body(b""))  # type: ignore[arg-type]
    assert response.status == 403
    document = await body_of(response)
    assert b"<Code>AccessDenied</Code>" in document
    assert b"Request has expired" in document


async def test_recreating_your_own_bucket_is_200_only_in_us_east_1(engine: Engine) -> None:
    app = S3App(engine, KEYS, region="us-east-1")
    await ok(app, "PUT", "/photos")
    assert (await send(app, "PUT", "/photos")).status == 200
    elsewhere = S3App(engine, KEYS, region="eu-west-1")
    await ok(elsewhere, "PUT", "/films")
    again = await send(elsewhere, "PUT", "/films")
    assert again.status == 409
    assert b"<Code>BucketAlreadyOwnedByYou</Code>" in await body_of(again)


async def test_a_signed_utf8_header_is_verified_on_its_bytes_and_answered_as_s3_does(
    engine: Engine,
) -> None:
    """boto3 refuses non-ASCII metadata before sending; other SDKs send the UTF-8 bytes,
    signed as such (botocore's signer is the reference here)."""
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    aws_request = AWSRequest(
        method="PUT",
        url="http://relay.test/photos/a",
        data=b"x",
        headers={
            "x-amz-meta-name": "日本語",
            "x-amz-content-sha256": hashlib.sha256(b"x").hexdigest(),
        },
    )
    SigV4Auth(Credentials("alice", KEYS["alice"]), "s3", "us-east-1").add_auth(aws_request)
    wire = [(b"host", b"relay.test"), (b"content-length", b"1")]
    wire += [(name.encode(), value.encode("utf-8")) for name, value in aws_request.headers.items()]
    event = h11.Request(method="PUT", target="/photos/a", headers=wire)
    put = await app.handle(request_from_h11(event, None), Body(b"x"))  # type: ignore[arg-type]
    assert put.status == 200, await body_of(put)
    head = await send(app, "HEAD", "/photos/a")
    encoded = dict(head.headers)["x-amz-meta-name"]
    assert encoded == "=?UTF-8?B?" + base64.b64encode("日本語".encode()).decode() + "?="


def complete_body(parts: list[tuple[int, str]]) -> bytes:
    listed = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts
    )
    return f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode()


async def test_a_retried_complete_gets_the_first_answer(engine: Engine) -> None:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    created = await send(
        app, "POST", "/photos/k?uploads", headers=[("x-amz-checksum-algorithm", "CRC32")]
    )
    upload_id = (await body_of(created)).split(b"<UploadId>")[1].split(b"</UploadId>")[0]
    target = f"/photos/k?uploadId={upload_id.decode()}"
    crc = base64.b64encode(zlib.crc32(b"part one").to_bytes(4, "big")).decode()
    part = await send(
        app, "PUT", f"{target}&partNumber=1", b"part one", [("x-amz-checksum-crc32", crc)]
    )
    assert part.status == 200
    etag = dict(part.headers)["etag"]
    listed = complete_body([(1, etag)]).replace(
        b"</ETag>", f"</ETag><ChecksumCRC32>{crc}</ChecksumCRC32>".encode()
    )
    first = await send(app, "POST", target, listed)
    assert first.status == 200, await body_of(first)
    answer = await body_of(first)
    assert b"<ChecksumCRC32>" in answer
    again = await send(app, "POST", target, listed)
    assert again.status == 200, await body_of(again)
    assert await body_of(again) == answer
    # Another part list for the completed upload finds no upload; so does anything else.
    other = await send(app, "POST", target, complete_body([(1, '"' + "0" * 32 + '"')]))
    assert other.status == 404
    assert b"<Code>NoSuchUpload</Code>" in await body_of(other)
    assert (await send(app, "PUT", f"{target}&partNumber=2", b"late")).status == 404
    assert (await send(app, "GET", target)).status == 404


async def test_listing_uploads_pages_past_other_prefixes_and_owners(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read the registry two uploads at a time, so a page must be gathered across reads
    # that hold other prefixes' and other owners' uploads (before: one read of 10,000,
    # then a filter, which lost matches past it).
    monkeypatch.setattr(s3_multipart, "UPLOADS_READ_PER_QUERY", 2)
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    for key in ("a/1", "a/2", "a/3", "b/1", "b/2", "b/3", "c/1"):
        await ok(app, "POST", f"/photos/{key}?uploads")
    await Multipart(engine).create("photos", "b/15", UploadRequest(), owner="bob")

    def keys(listing: bytes) -> list[str]:
        return [part.split(b"</Key>")[0].decode() for part in listing.split(b"<Key>")[1:]]

    first = await ok(app, "GET", "/photos?uploads&prefix=b/&max-uploads=2")
    assert keys(first) == ["b/1", "b/2"]
    assert b"<IsTruncated>true</IsTruncated>" in first
    rest = await ok(app, "GET", "/photos?uploads&prefix=b/&max-uploads=2&key-marker=b/2")
    assert keys(rest) == ["b/3"]
    assert b"<IsTruncated>false</IsTruncated>" in rest
    everything = await ok(app, "GET", "/photos?uploads")
    assert keys(everything) == ["a/1", "a/2", "a/3", "b/1", "b/2", "b/3", "c/1"]
    assert (await ok(app, "GET", "/photos?uploads&key-marker=z")).count(b"<Upload>") == 0


@pytest.mark.slow
async def test_listing_uploads_finds_a_prefix_behind_ten_thousand_others(engine: Engine) -> None:
    # Before: one registry read of 10,000 uploads, then a filter by prefix: uploads under
    # a prefix that sorts after 10,000 others were never listed.
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    request = UploadRequest().encode()
    for number in range(10_001):
        await engine.registry.create_upload(
            f"id{number:05d}", "photos", f"a/{number:05d}", "bob", request
        )
    await ok(app, "POST", "/photos/b/1?uploads")
    listing = await ok(app, "GET", "/photos?uploads&prefix=b/")
    assert b"<Key>b/1</Key>" in listing
