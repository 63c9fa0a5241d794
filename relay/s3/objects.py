"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from functools import partial
from typing import Final

from relay.bucket import Manifest, resolve_range
from relay.chunker import Checksum, ChunkedBody
from relay.http import Response, WriterBody
from relay.s3 import checksums, conditions, permissions, xml
from relay.s3.buckets import owned_bucket
from relay.s3.checksums import BodyChecksum
from relay.s3.context import (
    Context,
    check_body_digests,
    decode_base64_digest,
    drain,
    empty_response,
    http_date,
    xml_response,
)
from relay.s3.errors import (
    AccessDenied,
    BadDigest,
    InvalidArgument,
    InvalidDigest,
    InvalidPartNumber,
    InvalidRequest,
    NoSuchVersion,
    XAmzContentSHA256Mismatch,
    from_exception,
)
from relay.s3.payload import Payload
from relay.s3.routing import (
    DeleteObject,
    DeleteObjects,
    GetObject,
    GetObjectAttributes,
    HeadObject,
    PutObject,
)
from relay.s3.tagging import check_canned_acl, check_version, tags_from_header
from relay.s3.xml import document, element

# Standard headers stored with the object and returned as they were given.
CONTENT_HEADERS: Final = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
META_PREFIX: Final = "x-amz-meta-"
MAX_DELETE_BODY_BYTES: Final = 2 << 20


def body_checksums(check: BodyChecksum, payload: Payload) -> frozenset[Checksum]:
    """What the chunker computes: the client's checksum, and SHA-256 when the signature
    covers the payload's hash (checked by ``body_verifier`` off the event loop)."""
    kinds = check.kinds
    if payload.signed_sha256 is not None:
        kinds |= {Checksum.SHA256}
    return kinds


def body_payload(ctx: Context, check: BodyChecksum) -> Payload:
    """The body of a PUT or UploadPart, held to the trailers ``x-amz-trailer`` declared."""
    declared = check.declared_trailers if ctx.auth.is_streaming else None
    return Payload(
        ctx.body, ctx.auth, ctx.content_length(), defer_sha256=True, declared_trailers=declared
    )


def body_verifier(
    ctx: Context, payload: Payload, check: BodyChecksum
) -> Callable[[ChunkedBody], None]:
    """Check the signed payload hash, Content-MD5 and the x-amz-checksum-* (header or
    trailer) before commit."""
    content_md5 = ctx.headers.get("content-md5")
    expected_md5 = None if content_md5 is None else _md5_header(content_md5)

    signed_sha256 = payload.signed_sha256

    def verify(body: ChunkedBody) -> None:
        if signed_sha256 is not None and body.checksums[Checksum.SHA256].hex() != signed_sha256:
            raise XAmzContentSHA256Mismatch()
        if expected_md5 is not None and body.md5 != expected_md5:
            raise BadDigest("The Content-MD5 you specified did not match what we received.")
        checksums.verify(check, body, payload.trailers)

    return verify


def _md5_header(value: str) -> bytes:
    try:
        return decode_base64_digest(value, 16, "Content-MD5")
    except InvalidArgument:
        raise InvalidDigest() from None


def stored_headers(headers: dict[str, str]) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """(content type, user metadata, content headers) from a PUT's headers."""
    metadata = {
        name[len(META_PREFIX) :]: value
        for name, value in headers.items()
        if name.startswith(META_PREFIX)
    }
    content: dict[str, str] = {name: headers[name] for name in CONTENT_HEADERS if name in headers}
    if "content-encoding" in content:
        # aws-chunked is the framing of this request's body, not an encoding of the object.
        # The rest is kept as sent, spacing included (S3 returns "deflate, gzip" as is).
        codings = [
            coding
            for coding in content["content-encoding"].split(",")
            if coding.strip() and coding.strip().lower() != "aws-chunked"
        ]
        if codings:
            content["content-encoding"] = ",".join(codings).strip()
        else:
            del content["content-encoding"]
    return headers.get("content-type"), metadata, content


def ascii_header_value(value: str) -> str:
    """A user metadata value as S3 answers it: as stored when US-ASCII, else its bytes as
    an RFC 2047 encoded word (``=?UTF-8?B?...?=``), which SDKs decode.

    Stored values are the header's bytes read as latin-1 (relay.http.messages); a value
    built in process past U+00FF is taken as text, so as UTF-8."""
    if value.isascii():
        return value
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = value.encode("utf-8")
    return f"=?UTF-8?B?{base64.b64encode(raw).decode('ascii')}?="


def object_headers(manifest: Manifest) -> list[tuple[str, str]]:
    headers = [
        ("etag", f'"{manifest.etag}"'),
        ("last-modified", http_date(manifest.last_modified_ms)),
        ("content-type", manifest.content_type),
        ("accept-ranges", "bytes"),
    ]
    headers.extend(manifest.headers.items())
    headers.extend(
        (META_PREFIX + name, ascii_header_value(value)) for name, value in manifest.metadata.items()
    )
    cid = manifest.content_cid
    if cid is not None:
        headers.append(("x-cid", str(cid)))
    # The body's UnixFS root: a raw chunk CID for objects of one chunk (roundabout answers
    # for those); `relay ls --cids` lists every chunk of larger ones.
    headers.append(("x-unixfs-cid", str(manifest.body)))
    if manifest.tags:
        headers.append(("x-amz-tagging-count", str(len(manifest.tags))))
    return headers


def _read_checksum_headers(
    manifest: Manifest, part_number: int | None, start: int, end: int
) -> list[tuple[str, str]]:
    """GET / HEAD with ``x-amz-checksum-mode: ENABLED``: the object's checksums when the
    response carries the whole object, a part's own for ``?partNumber=N`` of a multipart
    object, and none for any other range (a whole-object checksum does not describe it)."""
    if part_number is not None and manifest.part_checksums is not None:
        values = {
            name: checksums.encode_digest(digest)
            for name, digest in manifest.part_checksums[part_number - 1].items()
        }
        return checksums.response_headers(values, manifest.checksum_type)
    if start != 0 or end != manifest.size:
        return []
    return checksums.response_headers(manifest.checksum_values(), manifest.checksum_type)


async def put_object(ctx: Context, endpoint: PutObject) -> Response:
    check_canned_acl(ctx)
    tags = tags_from_header(ctx.headers.get("x-amz-tagging"))
    precondition = conditions.write_precondition(ctx.headers, endpoint.bucket, endpoint.key)
    await owned_bucket(ctx, endpoint.bucket)
    check = checksums.body_checksum(ctx.headers)
    payload = body_payload(ctx, check)
    content_type, metadata, content = stored_headers(ctx.headers)
    manifest = await ctx.engine.put_object(
        endpoint.bucket,
        endpoint.key,
        payload,
        content_type=content_type,
        metadata=metadata,
        headers=content,
        tags=tags,
        checksums=body_checksums(check, payload),
        keep_checksums=check.kinds,
        verify=body_verifier(ctx, payload, check),
        precondition=precondition,
        size_hint=payload.size_hint,
        acl=permissions.object_grants_for_write(ctx),
    )
    return empty_response(200, _written_headers(manifest))


def _written_headers(manifest: Manifest) -> list[tuple[str, str]]:
    headers = [("etag", f'"{manifest.etag}"')]
    cid = manifest.content_cid
    if cid is not None:
        headers.append(("x-cid", str(cid)))
    headers.extend(checksums.response_headers(manifest.checksum_values(), manifest.checksum_type))
    return headers


_RANGE: Final = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """(first, last, suffix) for a single byte range; None for no or an ignorable range
    (a syntactically invalid or multi-range header is ignored, as HTTP allows)."""
    if value is None:
        return None
    match = _RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        return None, None, int(last)
    return int(first), (int(last) if last else None), None


# GET's response-* query parameters override these response headers (presigned downloads).
RESPONSE_OVERRIDES: Final = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def _part_range(ctx: Context, manifest: Manifest) -> tuple[int, int] | None:
    """``?partNumber=N``: the byte range of part N (a non-multipart object is one part)."""
    value = ctx.query.get("partNumber")
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument("Part number must be an integer between 1 and 10000") from None
    sizes = manifest.part_sizes or (manifest.size,)
    if not 1 <= number <= len(sizes):
        raise InvalidPartNumber()
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1] - 1


def _with_overrides(ctx: Context, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    overrides = {
        header: ctx.query[name] for name, header in RESPONSE_OVERRIDES.items() if name in ctx.query
    }
    if not overrides:
        return headers
    kept = [(name, value) for name, value in headers if name not in overrides]
    return kept + list(overrides.items())


async def get_object(ctx: Context, endpoint: GetObject | HeadObject) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    check_version(ctx)
    manifest = await ctx.engine.head_object(endpoint.bucket, endpoint.key)
    try:
        conditions.check_read(ctx.headers, manifest)
    except conditions.NotModified:
        return empty_response(304, [
            ("etag", f'"{manifest.etag}"'), ("last-modified", http_date(manifest.last_modified_ms)),
        ])  # fmt: skip
    part = _part_range(ctx, manifest)
    wanted = parse_range(ctx.headers.get("range"))
    if part is not None:
        if wanted is not None:
            raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
        wanted = (part[0], part[1], None)
    headers = _with_overrides(ctx, object_headers(manifest))
    if part is not None and manifest.part_sizes is not None:
        headers.append(("x-amz-mp-parts-count", str(len(manifest.part_sizes))))
    first, last, suffix = wanted if wanted is not None else (None, None, None)
    if isinstance(endpoint, HeadObject):
        start, end = resolve_range(manifest.size, first, last, suffix)
        plan = None
    else:
        plan = await ctx.engine.plan_read(
            endpoint.bucket, endpoint.key, first=first, last=last, suffix=suffix,
            manifest=manifest,
        )  # fmt: skip
        # A missing or corrupt first block is an S3 error, not a 200 cut short.
        plan = await ctx.engine.fetch_first_chunk(plan)
        start, end = plan.start, plan.end
    if ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        part_number = None if part is None else int(ctx.query["partNumber"])
        headers.extend(_read_checksum_headers(manifest, part_number, start, end))
    status = 200
    if wanted is not None:
        status = 206  # also for ?partNumber=1 of a single-part object, as S3 answers
        headers.append(("content-range", f"bytes {start}-{end - 1}/{manifest.size}"))
    headers.append(("content-length", str(end - start)))
    if plan is None:
        return Response(status, headers, b"", content_length=end - start)
    body = WriterBody(partial(ctx.engine.write_object, plan))
    return Response(status, headers, body, content_length=end - start)


_ATTRIBUTES: Final = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")


def _int_header(ctx: Context, name: str, default: int) -> int:
    value = ctx.headers.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer") from None
    if number < 0:
        raise InvalidArgument(f"{name} must not be negative")
    return number


async def get_object_attributes(ctx: Context, endpoint: GetObjectAttributes) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    check_version(ctx)
    wanted = {
        name.strip() for name in ctx.headers.get("x-amz-object-attributes", "").split(",")
    } - {""}
    if not wanted or wanted - set(_ATTRIBUTES):
        raise InvalidArgument("Invalid attribute name specified.")
    manifest = await ctx.engine.head_object(endpoint.bucket, endpoint.key)
    body = ""
    if "ETag" in wanted:
        body += element("ETag", manifest.etag)
    if "Checksum" in wanted and manifest.checksums:
        body += (
            "<Checksum>"
            + xml.checksum_elements(manifest.checksum_values())
            + element("ChecksumType", manifest.checksum_type)
            + "</Checksum>"
        )
    if "ObjectParts" in wanted and manifest.part_sizes is not None:
        marker = _int_header(ctx, "x-amz-part-number-marker", 0)
        max_parts = min(_int_header(ctx, "x-amz-max-parts", 1000), 1000)
        sums = manifest.part_checksums or tuple({} for _ in manifest.part_sizes)
        numbered = list(enumerate(zip(manifest.part_sizes, sums, strict=True), start=1))[marker:]
        shown, truncated = numbered[:max_parts], len(numbered) > max_parts
        body += (
            "<ObjectParts>"
            + element("PartsCount", len(manifest.part_sizes))
            + element("PartNumberMarker", marker)
            + (element("NextPartNumberMarker", shown[-1][0]) if shown else "")
            + element("MaxParts", max_parts)
            + element("IsTruncated", "true" if truncated else "false")
            + "".join(
                f"<Part>{element('PartNumber', n)}{element('Size', size)}"
                + xml.checksum_elements(
                    {name: checksums.encode_digest(digest) for name, digest in part_sums.items()}
                )
                + "</Part>"
                for n, (size, part_sums) in shown
            )
            + "</ObjectParts>"
        )
    if "StorageClass" in wanted:
        body += element("StorageClass", "STANDARD")
    if "ObjectSize" in wanted:
        body += element("ObjectSize", manifest.size)
    return xml_response(
        200,
        document("GetObjectAttributesResponse", body),
        [("last-modified", http_date(manifest.last_modified_ms))],
    )


async def delete_object(ctx: Context, endpoint: DeleteObject) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    check_version(ctx)
    precondition = conditions.delete_precondition(ctx.headers, endpoint.bucket, endpoint.key)
    await ctx.engine.delete_object(endpoint.bucket, endpoint.key, precondition=precondition)
    headers = [("x-amz-version-id", "null")] if "versionId" in ctx.query else []
    return empty_response(204, headers)


async def delete_objects(ctx: Context, endpoint: DeleteObjects) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    payload = Payload(ctx.body, ctx.auth, ctx.content_length())
    body = await drain(payload, MAX_DELETE_BODY_BYTES)
    check_body_digests(ctx.headers, body, payload.trailers)
    request = xml.parse_delete(body)
    errors: list[tuple[str, str, str]] = [
        (key, NoSuchVersion.code, NoSuchVersion.default_message)
        for key, version in request.keys
        if version is not None and version != "null"
    ]
    keys = []
    for key, version in request.keys:
        if version is not None and version != "null":
            continue
        if permissions.allows(ctx, "s3:DeleteObject", endpoint.bucket, key):
            keys.append(key)
        else:
            errors.append((key, AccessDenied.code, AccessDenied.default_message))
    results = await ctx.engine.delete_objects(endpoint.bucket, keys)
    deleted: list[str] = []
    for key, result in zip(keys, results, strict=True):
        if result is None:
            deleted.append(key)
        else:
            error = from_exception(result)
            errors.append((key, error.code, error.message))
    return xml_response(200, xml.delete_result(deleted, errors, quiet=request.quiet))
