"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
and the two listings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from relay.access import acl
from relay.bucket import BucketAlreadyExists, Page, resume_after
from relay.http import Response
from relay.registry.base import BucketRecord
from relay.s3 import permissions, xml
from relay.s3.context import Context, drain, empty_response, xml_response
from relay.s3.errors import (
    AccessDenied,
    InvalidArgument,
    InvalidBucketName,
)
from relay.s3.listing import (
    decode_token,
    encode_token,
    encoder,
    parse_max_keys,
    render_v1,
    render_v2,
)
from relay.s3.payload import Payload
from relay.s3.routing import (
    CreateBucket,
    DeleteBucket,
    GetBucketLocation,
    HeadBucket,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
)
from relay.s3.xml import Owner, document, element, iso8601

_BUCKET_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS: Final = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# The one region where S3 answers a CreateBucket of a bucket the caller owns with 200.
_LEGACY_REGION: Final = "us-east-1"


def check_bucket_name(name: str) -> None:
    """S3's general-purpose bucket naming rules."""
    if (
        not _BUCKET_NAME.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or _IP_ADDRESS.match(name)
        or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        or name.endswith(("-s3alias", "--ol-s3", "--x-s3", ".mrap"))
    ):
        raise InvalidBucketName(BucketName=name)


async def owned_bucket(
    ctx: Context, name: str, *, expected_owner_header: str = "x-amz-expected-bucket-owner"
) -> BucketRecord:
    """The bucket, if it exists and the caller may act on it: it was authorized for this
    request (``relay.s3.access``), or belongs to the caller's credential.

    ``x-amz-expected-bucket-owner`` (``x-amz-source-expected-bucket-owner`` for a copy's
    source) must name the bucket's owner, the access key that created it, else 403 as S3
    answers: a client guarding against writing into someone else's bucket is obeyed."""
    record = await ctx.engine.head_bucket(name)
    owner = record.owner or ctx.owner
    # relay.s3.access.authorize decided this request (policy, ACLs); without its word,
    # only the owner passes.
    if name not in ctx.authorized and (ctx.anonymous or owner != ctx.owner):
        raise AccessDenied()
    expected = ctx.headers.get(expected_owner_header)
    if expected is not None and expected.strip() != owner:
        raise AccessDenied()
    return record


MAX_BUCKETS_PER_PAGE: Final = 10_000


def _max_buckets(value: str | None) -> int:
    if value is None:
        return MAX_BUCKETS_PER_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_BUCKETS_PER_PAGE:
        raise InvalidArgument("max-buckets must be an integer from 1 to 10000")
    return int(value)


async def list_buckets(ctx: Context) -> Response:
    """The caller's buckets by name, paged by ``max-buckets`` and ``continuation-token``
    (the last name of the previous page), filtered by ``prefix`` and ``bucket-region``."""
    query = ctx.query
    max_buckets = _max_buckets(query.get("max-buckets"))
    token = query.get("continuation-token")
    after = decode_token(token).decode("utf-8", "replace") if token else ""
    prefix = query.get("prefix")
    region = query.get("bucket-region")
    records = await ctx.engine.list_buckets()
    mine = sorted(
        (r.name, r.created_ms)
        for r in records
        if (not r.owner or r.owner == ctx.owner)
        and r.name > after
        and r.name.startswith(prefix or "")
        and region in (None, ctx.region)  # relay's buckets all live in its one region
    )
    page = mine[:max_buckets]
    next_token = encode_token(page[-1][0].encode()) if len(mine) > max_buckets else None
    body = xml.list_buckets(
        xml.Owner(ctx.owner, ctx.owner), page, continuation_token=next_token, prefix=prefix
    )
    return xml_response(200, body)


async def create_bucket(ctx: Context, endpoint: CreateBucket) -> Response:
    check_bucket_name(endpoint.bucket)
    grants = permissions.stored_grants(permissions.requested_grants(ctx, ctx.owner), ctx.owner)
    body = await drain(Payload(ctx.body, ctx.auth, ctx.content_length()), 64 << 10)
    xml.parse_location_constraint(body)  # any region is accepted: relay has one
    try:
        await ctx.engine.create_bucket(endpoint.bucket, owner=ctx.owner)
    except BucketAlreadyExists as exc:
        # us-east-1 keeps S3's legacy answer: re-creating your own bucket succeeds.
        if not (exc.owned_by_caller and ctx.region == _LEGACY_REGION):
            raise
    else:
        if grants is not None:
            await ctx.engine.put_bucket_setting(
                endpoint.bucket, permissions.ACL, acl.encode(grants)
            )
    return empty_response(200, [("location", f"/{endpoint.bucket}")])


async def head_bucket(ctx: Context, endpoint: HeadBucket) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    return empty_response(200, [("x-amz-bucket-region", ctx.region)])


async def delete_bucket(ctx: Context, endpoint: DeleteBucket) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    await ctx.engine.delete_bucket(endpoint.bucket)
    return empty_response(204)


async def get_bucket_location(ctx: Context, endpoint: GetBucketLocation) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    return xml_response(200, xml.location_constraint(ctx.region))


def _bucket_owner(ctx: Context) -> str:
    """Who a listing names as its objects' owner: the bucket's (every object is its
    bucket owner's), whoever lists it."""
    return ctx.bucket_access.owner if ctx.bucket_access is not None else ctx.owner


@dataclass(frozen=True, slots=True)
class _Listing:
    """The query parameters every listing shares."""

    prefix: str
    delimiter: str
    max_keys: int
    encoding_type: str | None


async def _listing(ctx: Context, bucket: str) -> _Listing:
    await owned_bucket(ctx, bucket)
    query = ctx.query
    return _Listing(
        query.get("prefix", ""),
        query.get("delimiter", ""),
        parse_max_keys(query.get("max-keys")),
        query.get("encoding-type"),
    )


async def _page(ctx: Context, bucket: str, listing: _Listing, cursor: bytes) -> Page:
    return await ctx.engine.list_page(
        bucket,
        prefix=listing.prefix,
        delimiter=listing.delimiter,
        cursor=cursor,
        max_keys=listing.max_keys,
    )


async def list_objects_v2(ctx: Context, endpoint: ListObjectsV2) -> Response:
    listing = await _listing(ctx, endpoint.bucket)
    query = ctx.query
    token = query.get("continuation-token")
    start_after = query.get("start-after")
    # The walk starts at the prefix anyway; a cursor only ever moves it further on.
    # An empty token is the start of the listing, as on S3.
    cursor = decode_token(token) if token else (start_after or "").encode()
    page = await _page(ctx, endpoint.bucket, listing, cursor)
    fetch_owner = query.get("fetch-owner", "").lower() == "true"
    body = render_v2(
        endpoint.bucket,
        page,
        prefix=listing.prefix,
        delimiter=listing.delimiter,
        max_keys=listing.max_keys,
        encoding_type=listing.encoding_type,
        start_after=start_after,
        continuation_token=token,
        owner=_bucket_owner(ctx) if fetch_owner else None,
    )
    return xml_response(200, body)


async def list_objects_v1(ctx: Context, endpoint: ListObjects) -> Response:
    listing = await _listing(ctx, endpoint.bucket)
    query = ctx.query
    marker = query.get("marker", "")
    cursor = resume_after(marker, listing.prefix, listing.delimiter) if marker else b""
    page = await _page(ctx, endpoint.bucket, listing, cursor)
    body = render_v1(
        endpoint.bucket,
        page,
        prefix=listing.prefix,
        delimiter=listing.delimiter,
        max_keys=listing.max_keys,
        encoding_type=listing.encoding_type,
        marker=marker,
        owner=_bucket_owner(ctx),
    )
    return xml_response(200, body)


async def list_object_versions(ctx: Context, endpoint: ListObjectVersions) -> Response:
    """Every object as its one version, ``null`` (single-version buckets)."""
    listing = await _listing(ctx, endpoint.bucket)
    query = ctx.query
    key_marker = query.get("key-marker", "")
    cursor = resume_after(key_marker, listing.prefix, listing.delimiter) if key_marker else b""
    page = await _page(ctx, endpoint.bucket, listing, cursor)
    encode = encoder(listing.encoding_type)
    owner = Owner(_bucket_owner(ctx), _bucket_owner(ctx)).render()
    body = (
        element("Name", endpoint.bucket)
        + element("Prefix", encode(listing.prefix))
        + element("KeyMarker", encode(key_marker))
        + element("VersionIdMarker", query.get("version-id-marker", ""))
        + element("MaxKeys", listing.max_keys)
        + (element("Delimiter", encode(listing.delimiter)) if listing.delimiter else "")
        + element("IsTruncated", "true" if page.is_truncated else "false")
        + (element("EncodingType", listing.encoding_type) if listing.encoding_type else "")
    )
    if page.is_truncated and page.last_entry is not None:
        body += element("NextKeyMarker", encode(page.last_entry))
        body += element("NextVersionIdMarker", "null")
    for key, summary in page.keys:
        body += (
            "<Version>"
            + element("Key", encode(key))
            + element("VersionId", "null")
            + element("IsLatest", "true")
            + element("LastModified", iso8601(summary.last_modified_ms))
            + element("ETag", f'"{summary.etag}"')
            + element("Size", summary.size)
            + owner
            + element("StorageClass", "STANDARD")
            + "</Version>"
        )
    body += "".join(
        f"<CommonPrefixes>{element('Prefix', encode(cp))}</CommonPrefixes>"
        for cp in page.common_prefixes
    )
    return xml_response(200, document("ListVersionsResult", body))
