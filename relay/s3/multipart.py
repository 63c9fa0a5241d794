"""Multipart operations: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from relay.bucket import DEFAULT_CONTENT_TYPE, MAX_PARTS, Manifest, Upload, UploadRequest
from relay.bucket import NoSuchUpload as UploadNotOpen
from relay.chunker import ChecksumType
from relay.http import Response
from relay.s3 import checksums, conditions, permissions, xml
from relay.s3.buckets import owned_bucket
from relay.s3.context import Context, drain, empty_response, xml_response
from relay.s3.errors import InvalidArgument, InvalidPart, NoSuchUpload
from relay.s3.listing import encoder, parse_max_keys
from relay.s3.objects import body_checksums, body_payload, body_verifier, stored_headers
from relay.s3.payload import Payload
from relay.s3.routing import (
    AbortMultipartUpload,
    CompleteMultipartUpload,
    CreateMultipartUpload,
    ListMultipartUploads,
    ListParts,
    UploadPart,
)
from relay.s3.tagging import check_canned_acl, tags_from_header
from relay.s3.xml import document, element, iso8601, optional

MAX_COMPLETE_BODY_BYTES: Final = 2 << 20


async def find_upload(ctx: Context, bucket: str, key: str, upload_id: str) -> Upload:
    """The caller's upload ``upload_id`` of ``bucket/key``, or NoSuchUpload."""
    await owned_bucket(ctx, bucket)
    upload = await ctx.multipart.get(bucket, key, upload_id)
    if upload.owner and upload.owner != ctx.owner:
        raise NoSuchUpload()
    return upload


async def create(ctx: Context, endpoint: CreateMultipartUpload) -> Response:
    check_canned_acl(ctx)
    await owned_bucket(ctx, endpoint.bucket)
    content_type, metadata, content = stored_headers(ctx.headers)
    kind, checksum_type = checksums.upload_checksum(ctx.headers)
    request = UploadRequest(
        content_type=content_type or DEFAULT_CONTENT_TYPE,
        metadata=metadata,
        headers=content,
        checksum=None if kind is None else kind.value,
        tags=tags_from_header(ctx.headers.get("x-amz-tagging")),
        checksum_type=None if checksum_type is None else checksum_type.value,
        acl=permissions.object_grants_for_write(ctx),
    )
    upload = await ctx.multipart.create(endpoint.bucket, endpoint.key, request, owner=ctx.owner)
    body = (
        element("Bucket", endpoint.bucket)
        + element("Key", endpoint.key)
        + element("UploadId", upload.upload_id)
    )
    headers = []
    if kind is not None and checksum_type is not None:
        headers = [
            (checksums.ALGORITHM_HEADER, kind.value.upper()),
            (checksums.TYPE_HEADER, checksum_type.value),
        ]
    return xml_response(200, document("InitiateMultipartUploadResult", body), headers)


async def upload_part(ctx: Context, endpoint: UploadPart) -> Response:
    check = checksums.body_checksum(ctx.headers)
    upload = await find_upload(ctx, endpoint.bucket, endpoint.key, endpoint.upload_id)
    upload_kind = upload.request.checksum_kind
    checksums.check_part(check, None if upload_kind is None else upload_kind[0])
    payload = body_payload(ctx, check)
    part = await ctx.multipart.upload_part(
        upload,
        endpoint.part_number,
        payload,
        checksums=body_checksums(check, payload),
        verify=body_verifier(ctx, payload, check),
        size_hint=payload.size_hint,
        keep_checksums=check.kinds,
    )
    headers = [("etag", f'"{part.etag}"')]
    headers.extend(
        (f"x-amz-checksum-{name}", checksums.encode_digest(digest))
        for name, digest in part.checksums.items()
    )
    return empty_response(200, headers)


async def complete(ctx: Context, endpoint: CompleteMultipartUpload) -> Response:
    try:
        upload = await find_upload(ctx, endpoint.bucket, endpoint.key, endpoint.upload_id)
    except (NoSuchUpload, UploadNotOpen):
        return await _complete_again(ctx, endpoint)
    body = await drain(Payload(ctx.body, ctx.auth, ctx.content_length()), MAX_COMPLETE_BODY_BYTES)
    parts = xml.parse_complete_multipart(body)
    if len(parts) > MAX_PARTS:
        raise InvalidPart()
    upload_kind = upload.request.checksum_kind
    kind, checksum_type = (None, None) if upload_kind is None else upload_kind
    expected = checksums.complete_expectation(ctx.headers, kind, checksum_type)
    given = [checksums.completed_part_checksums(part.checksums) for part in parts]
    if kind is not None and checksum_type is ChecksumType.COMPOSITE:
        for part, sums in zip(parts, given, strict=True):
            if kind.value not in sums:
                raise checksums.missing_part_checksum(kind, part.part_number)

    def verify(object_checksums: Mapping[str, bytes]) -> None:
        if expected is None or kind is None:
            return
        digest, count = expected
        if object_checksums.get(kind.value) != digest or count not in (None, len(parts)):
            raise checksums.complete_mismatch(kind)

    manifest = await ctx.multipart.complete(
        upload,
        [(part.part_number, part.etag) for part in parts],
        precondition=conditions.write_precondition(ctx.headers, endpoint.bucket, endpoint.key),
        given_checksums=given,
        verify=verify,
    )
    return _complete_response(endpoint, manifest)


async def _complete_again(ctx: Context, endpoint: CompleteMultipartUpload) -> Response:
    """A retried Complete (an SDK that timed out waiting for the first answer): the same
    part list gets the same result, as on S3; anything else finds no upload."""
    body = await drain(Payload(ctx.body, ctx.auth, ctx.content_length()), MAX_COMPLETE_BODY_BYTES)
    parts = xml.parse_complete_multipart(body)
    manifest, owner = await ctx.multipart.completed(
        endpoint.bucket,
        endpoint.key,
        endpoint.upload_id,
        [(part.part_number, part.etag) for part in parts],
    )
    if owner and owner != ctx.owner:
        raise NoSuchUpload()
    return _complete_response(endpoint, manifest)


def _complete_response(endpoint: CompleteMultipartUpload, manifest: Manifest) -> Response:
    result = (
        element("Location", f"/{endpoint.bucket}/{endpoint.key}")
        + element("Bucket", endpoint.bucket)
        + element("Key", endpoint.key)
        + element("ETag", f'"{manifest.etag}"')
    )
    if manifest.checksums:
        result += xml.checksum_elements(manifest.checksum_values())
        result += element("ChecksumType", manifest.checksum_type)
    headers = []
    cid = manifest.content_cid
    if cid is not None:
        headers.append(("x-cid", str(cid)))
    return xml_response(200, document("CompleteMultipartUploadResult", result), headers)


async def abort(ctx: Context, endpoint: AbortMultipartUpload) -> Response:
    await find_upload(ctx, endpoint.bucket, endpoint.key, endpoint.upload_id)
    await ctx.multipart.abort(endpoint.bucket, endpoint.key, endpoint.upload_id)
    return empty_response(204)


def _int_param(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer") from None
    if number < 0:
        raise InvalidArgument(f"{name} must not be negative")
    return number


async def list_parts(ctx: Context, endpoint: ListParts) -> Response:
    upload = await find_upload(ctx, endpoint.bucket, endpoint.key, endpoint.upload_id)
    marker = _int_param(ctx.query.get("part-number-marker"), "part-number-marker", 0)
    max_parts = min(_int_param(ctx.query.get("max-parts"), "max-parts", 1000), 1000)
    parts = await ctx.multipart.list_parts(upload, after_part=marker, limit=max_parts + 1)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    owner = xml.Owner(upload.owner or ctx.owner, upload.owner or ctx.owner)
    body = (
        element("Bucket", endpoint.bucket)
        + element("Key", endpoint.key)
        + element("UploadId", upload.upload_id)
        + owner.render("Initiator")
        + owner.render()
        + element("StorageClass", "STANDARD")
        + element("PartNumberMarker", marker)
        + optional("NextPartNumberMarker", parts[-1].part_number if parts else None)
        + element("MaxParts", max_parts)
        + element("IsTruncated", "true" if truncated else "false")
    )
    upload_kind = upload.request.checksum_kind
    if upload_kind is not None:
        body += element("ChecksumAlgorithm", upload_kind[0].value.upper())
        body += element("ChecksumType", upload_kind[1].value)
    body += "".join(
        "<Part>"
        + element("PartNumber", part.part_number)
        + element("LastModified", iso8601(part.last_modified_ms))
        + element("ETag", f'"{part.etag}"')
        + element("Size", part.size)
        + xml.checksum_elements(
            {name: checksums.encode_digest(digest) for name, digest in part.checksums.items()}
        )
        + "</Part>"
        for part in parts
    )
    return xml_response(200, document("ListPartsResult", body))


# Uploads read from the registry per query while a page is gathered.
UPLOADS_READ_PER_QUERY: Final = 1000


async def _uploads_page(
    ctx: Context, bucket: str, prefix: str, key_marker: str, upload_marker: str, wanted: int
) -> list[Upload]:
    """The caller's uploads under ``prefix`` after the markers, in (key, upload id) order:
    ``wanted`` of them and one more if there is one (which says the page is truncated).
    Read from the registry a batch at a time, starting at the prefix and stopping past it,
    so neither other prefixes' uploads nor other owners' can crowd matches out."""
    after_key, after_id = key_marker, upload_marker
    if key_marker < prefix:
        # From the prefix itself, its own uploads included ("\0" sorts before every id).
        after_key, after_id = prefix, "\0"
    found: list[Upload] = []
    while len(found) <= wanted:
        batch = await ctx.multipart.list_uploads(
            bucket, key_marker=after_key, upload_id_marker=after_id, limit=UPLOADS_READ_PER_QUERY
        )
        for upload in batch:
            if not upload.key.startswith(prefix):
                return found  # keys are in order: past the prefix, nothing more matches
            if not upload.owner or upload.owner == ctx.owner:
                found.append(upload)
                if len(found) > wanted:
                    return found
        if len(batch) < UPLOADS_READ_PER_QUERY:
            return found
        after_key, after_id = batch[-1].key, batch[-1].upload_id
    return found


async def list_uploads(ctx: Context, endpoint: ListMultipartUploads) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    query = ctx.query
    prefix = query.get("prefix", "")
    key_marker = query.get("key-marker", "")
    upload_marker = query.get("upload-id-marker", "") if key_marker else ""
    max_uploads = parse_max_keys(query.get("max-uploads"))
    encoding_type = query.get("encoding-type")
    encode = encoder(encoding_type)
    uploads = await _uploads_page(
        ctx, endpoint.bucket, prefix, key_marker, upload_marker, max_uploads
    )
    # max-uploads=0 asks for no uploads, and S3 then says nothing is left out.
    truncated = max_uploads > 0 and len(uploads) > max_uploads
    uploads = uploads[:max_uploads]
    body = (
        element("Bucket", endpoint.bucket)
        + element("KeyMarker", encode(key_marker))
        + element("UploadIdMarker", upload_marker)
        + element("Prefix", encode(prefix))
        + element("MaxUploads", max_uploads)
        + element("IsTruncated", "true" if truncated else "false")
        + (element("EncodingType", encoding_type) if encoding_type else "")
    )
    if truncated and uploads:
        body += element("NextKeyMarker", encode(uploads[-1].key))
        body += element("NextUploadIdMarker", uploads[-1].upload_id)
    for upload in uploads:
        owner = xml.Owner(upload.owner or ctx.owner, upload.owner or ctx.owner)
        body += (
            "<Upload>"
            + element("Key", encode(upload.key))
            + element("UploadId", upload.upload_id)
            + owner.render("Initiator")
            + owner.render()
            + element("StorageClass", "STANDARD")
            + element("Initiated", iso8601(upload.created_ms))
            + "</Upload>"
        )
    return xml_response(200, document("ListMultipartUploadsResult", body))
