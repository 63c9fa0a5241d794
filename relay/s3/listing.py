"""ListObjects (v1) and ListObjectsV2 as S3 spells them: tokens, max-keys, encoding, XML.

The paging itself (prefixes, delimiters, cursors, read-ahead) is the engine's listing
service, ``relay.bucket.listing``; this module turns its ``Page`` into S3's answer. The
continuation token is the page's cursor, base64 with a version tag.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import quote_plus

from relay.bucket import Page
from relay.s3.errors import InvalidArgument
from relay.s3.xml import document, element, iso8601, optional, text

MAX_KEYS = 1000


def encode_token(cursor: bytes) -> str:
    return base64.urlsafe_b64encode(b"r1" + cursor).decode("ascii")


def decode_token(token: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidArgument("The continuation token provided is incorrect") from None
    if not raw.startswith(b"r1"):
        raise InvalidArgument("The continuation token provided is incorrect")
    return raw[2:]


def parse_max_keys(value: str | None) -> int:
    if value is None:
        return MAX_KEYS
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument("Provided max-keys not an integer or within integer range") from None
    if number < 0:
        raise InvalidArgument("max-keys must not be negative")
    return min(number, MAX_KEYS)


def encoder(encoding_type: str | None) -> Callable[[str], str]:
    """How keys and prefixes are written for ``encoding-type`` (only ``url`` exists)."""
    if encoding_type is None:
        return lambda value: value
    if encoding_type != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request")
    return lambda value: quote_plus(value, safe="/")


def _contents(page: Page, encode: Callable[[str], str], owner: str | None) -> str:
    parts = []
    for key, summary in page.keys:
        owner_xml = (
            f"<Owner>{element('ID', owner)}{element('DisplayName', owner)}</Owner>"
            if owner is not None
            else ""
        )
        parts.append(
            "<Contents>"
            + element("Key", encode(key))
            + element("LastModified", iso8601(summary.last_modified_ms))
            + element("ETag", f'"{summary.etag}"')
            + element("Size", summary.size)
            + owner_xml
            + element("StorageClass", "STANDARD")
            + "</Contents>"
        )
    parts.extend(
        f"<CommonPrefixes>{element('Prefix', encode(cp))}</CommonPrefixes>"
        for cp in page.common_prefixes
    )
    return "".join(parts)


def render_v2(
    bucket: str,
    page: Page,
    *,
    prefix: str,
    delimiter: str,
    max_keys: int,
    encoding_type: str | None,
    start_after: str | None,
    continuation_token: str | None,
    owner: str | None,
) -> bytes:
    encode = encoder(encoding_type)
    body = element("Name", bucket) + element("Prefix", encode(prefix))
    if delimiter:
        body += element("Delimiter", encode(delimiter))
    body += element("MaxKeys", max_keys)
    body += element("KeyCount", len(page.keys) + len(page.common_prefixes))
    body += element("IsTruncated", "true" if page.is_truncated else "false")
    if encoding_type:
        body += element("EncodingType", encoding_type)
    body += optional("StartAfter", None if start_after is None else encode(start_after))
    body += optional("ContinuationToken", continuation_token)
    if page.is_truncated:
        body += element("NextContinuationToken", encode_token(page.cursor))
    body += _contents(page, encode, owner)
    return document("ListBucketResult", body)


def render_v1(
    bucket: str,
    page: Page,
    *,
    prefix: str,
    delimiter: str,
    max_keys: int,
    encoding_type: str | None,
    marker: str,
    owner: str,
) -> bytes:
    encode = encoder(encoding_type)
    # v1 never encodes its Prefix (S3 does not; botocore, which asks for url encoding on
    # every v1 listing, decodes Delimiter, Marker, NextMarker and keys but not Prefix).
    body = element("Name", bucket) + element("Prefix", prefix)
    body += element("Marker", encode(marker))
    body += element("MaxKeys", max_keys)
    if delimiter:
        body += element("Delimiter", encode(delimiter))
    body += element("IsTruncated", "true" if page.is_truncated else "false")
    if encoding_type:
        body += element("EncodingType", encoding_type)
    if page.is_truncated and delimiter and page.last_entry is not None:
        body += element("NextMarker", encode(page.last_entry))
    body += _contents(page, encode, owner)
    return document("ListBucketResult", body)


__all__ = ["render_v1", "render_v2", "text"]
