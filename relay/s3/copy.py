"""Server-side copy: CopyObject and UploadPartCopy.

A copy moves no bytes. The source's manifest already names its body by UnixFS root, and
every chunk under it is content-addressed, so the destination's manifest points at the
same root: copying a 5 GiB object is one commit. UploadPartCopy reuses the source's whole
chunks the same way and re-chunks only partial chunks at the edges of the range.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final
from urllib.parse import unquote

from relay.bucket import Manifest
from relay.http import Response
from relay.registry.base import now_ms
from relay.s3 import checksums, conditions, permissions, xml
from relay.s3.buckets import owned_bucket
from relay.s3.context import Context, xml_response
from relay.s3.errors import InvalidArgument, InvalidRange, InvalidRequest, NoSuchVersion
from relay.s3.multipart import find_upload
from relay.s3.objects import stored_headers
from relay.s3.routing import CopyObject, UploadPartCopy
from relay.s3.tagging import check_canned_acl, tags_from_header
from relay.s3.xml import document, element, iso8601

_RANGE: Final = re.compile(r"^bytes=(\d+)-(\d+)$")


def parse_copy_source(value: str) -> tuple[str, str]:
    """``x-amz-copy-source``: ``[/]bucket/key[?versionId=null]``, URL-encoded."""
    source, _, query = value.partition("?")
    if query:
        name, _, version = query.partition("=")
        if name != "versionId":
            raise InvalidArgument("Invalid copy source")
        if unquote(version) != "null":
            raise NoSuchVersion(VersionId=unquote(version))
    bucket, _, key = unquote(source).lstrip("/").partition("/")
    if not bucket or not key:
        raise InvalidArgument("Copy Source must mention the source bucket and key: bucket/key")
    return bucket, key


async def _source(ctx: Context) -> Manifest:
    bucket, key = parse_copy_source(ctx.headers["x-amz-copy-source"])
    await owned_bucket(ctx, bucket, expected_owner_header="x-amz-source-expected-bucket-owner")
    manifest = await ctx.engine.head_object(bucket, key)
    conditions.check_read(ctx.headers, manifest, prefix="x-amz-copy-source-")
    return manifest


def _directive(ctx: Context, name: str) -> str:
    value = ctx.headers.get(name, "COPY").strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise InvalidArgument(f"Unknown {name}: {value}")
    return value


async def copy_object(ctx: Context, endpoint: CopyObject) -> Response:
    check_canned_acl(ctx)
    await owned_bucket(ctx, endpoint.bucket)
    source = await _source(ctx)
    metadata_directive = _directive(ctx, "x-amz-metadata-directive")
    tagging_directive = _directive(ctx, "x-amz-tagging-directive")
    same_object = (parse_copy_source(ctx.headers["x-amz-copy-source"])) == (
        endpoint.bucket,
        endpoint.key,
    )
    if same_object and metadata_directive == "COPY" and tagging_directive == "COPY":
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself"
            " without changing the object's metadata, storage class, website redirect"
            " location or encryption attributes."
        )
    # A copy gets the ACL its request asks for, never its source's (as on S3).
    copy = dataclasses.replace(
        source,
        key=endpoint.key,
        last_modified_ms=now_ms(),
        acl=permissions.object_grants_for_write(ctx),
    )
    if metadata_directive == "REPLACE":
        content_type, metadata, content = stored_headers(ctx.headers)
        copy = dataclasses.replace(
            copy,
            content_type=content_type or copy.content_type,
            metadata=metadata,
            headers=content,
        )
    if tagging_directive == "REPLACE":
        copy = dataclasses.replace(copy, tags=tags_from_header(ctx.headers.get("x-amz-tagging")))
    precondition = conditions.write_precondition(ctx.headers, endpoint.bucket, endpoint.key)
    await ctx.engine.commit_manifest(endpoint.bucket, copy, precondition=precondition)
    body = element("LastModified", iso8601(copy.last_modified_ms)) + element(
        "ETag", f'"{copy.etag}"'
    )
    if copy.checksums:
        body += xml.checksum_elements(copy.checksum_values())
        body += element("ChecksumType", copy.checksum_type)
    headers = [("x-amz-copy-source-version-id", "null")]
    cid = copy.content_cid
    if cid is not None:
        headers.append(("x-cid", str(cid)))
    return xml_response(200, document("CopyObjectResult", body), headers)


async def upload_part_copy(ctx: Context, endpoint: UploadPartCopy) -> Response:
    upload = await find_upload(ctx, endpoint.bucket, endpoint.key, endpoint.upload_id)
    source = await _source(ctx)
    start, end = 0, source.size
    wanted = ctx.headers.get("x-amz-copy-source-range")
    if wanted is not None:
        match = _RANGE.match(wanted.strip())
        if match is None:
            raise InvalidArgument(
                "The x-amz-copy-source-range value must be of the form bytes=first-last"
            )
        first, last = int(match.group(1)), int(match.group(2))
        if first > last or last >= source.size:
            raise InvalidRange(ActualObjectSize=str(source.size), RangeRequested=wanted)
        start, end = first, last + 1
    part = await ctx.multipart.upload_part_copy(upload, endpoint.part_number, source, start, end)
    body = element("LastModified", iso8601(part.last_modified_ms)) + element(
        "ETag", f'"{part.etag}"'
    )
    body += xml.checksum_elements(
        {name: checksums.encode_digest(digest) for name, digest in part.checksums.items()}
    )
    return xml_response(200, document("CopyPartResult", body))
