"""ListObjects (v1) and ListObjectsV2: prefixes, delimiters, pages.

Theory of operation. The bucket's MST yields keys in bytewise order from any start. A page
walks it from the cursor, rolling keys that contain the delimiter after the prefix into
common prefixes. Once a common prefix is emitted, the walk jumps past every key under it
by restarting just after ``prefix + b"\\xff"`` (0xff never occurs in UTF-8), so a prefix
holding a million keys costs one seek, not a million steps. A page holds at most
``max-keys`` entries (keys and common prefixes together); it is truncated exactly when one
more entry exists after its cursor, which the walk checks by looking one step ahead. The
continuation token is that cursor, so a common prefix is never listed twice and a key is
never skipped, wherever a page boundary falls.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

from relay.bucket import ObjectSummary
from relay.ipld.cid import CID
from relay.s3.errors import InvalidArgument
from relay.s3.xml import document, element, iso8601, optional, text

# (prefix, after, limit) -> ([(key, manifest cid)], more)
KeySource = Callable[[str, bytes, int], Awaitable[tuple[list[tuple[str, CID]], bool]]]
SummaryLoader = Callable[[list[CID]], Awaitable[list[ObjectSummary]]]

PAST_EVERY_UTF8_SUFFIX = b"\xff"
MAX_KEYS = 1000
# Keys fetched from the tree per step: enough for a page of plain keys in one step.
_STEP = 1001


@dataclass(frozen=True, slots=True)
class Page:
    keys: list[tuple[str, ObjectSummary]]
    common_prefixes: list[str]
    is_truncated: bool
    cursor: bytes  # where the next page starts (exclusive)
    last_entry: str | None  # the last key or common prefix returned (v1 NextMarker)


def common_prefix_of(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    index = key.find(delimiter, len(prefix))
    return None if index < 0 else key[: index + len(delimiter)]


def resume_after(marker: str, prefix: str, delimiter: str) -> bytes:
    """The cursor for a marker: past its whole common prefix if it rolls up into one
    (that prefix was listed already), else just past the marker itself."""
    if marker.startswith(prefix):
        rolled = common_prefix_of(marker, prefix, delimiter)
        if rolled is not None:
            return rolled.encode() + PAST_EVERY_UTF8_SUFFIX
    return marker.encode()


async def list_page(
    keys: KeySource,
    summaries: SummaryLoader,
    *,
    prefix: str,
    delimiter: str,
    cursor: bytes,
    max_keys: int,
) -> Page:
    if max_keys == 0:
        return Page([], [], False, cursor, None)  # as S3: an empty page, never truncated
    found: list[tuple[str, CID]] = []
    prefixes: list[str] = []
    last_entry: str | None = None
    while len(found) + len(prefixes) < max_keys:
        batch, more = await keys(prefix, cursor, _STEP)
        stopped_early = False  # the page filled up, or a prefix needs a seek
        for key, value in batch:
            rolled = common_prefix_of(key, prefix, delimiter)
            if rolled is None:
                found.append((key, value))
                cursor, last_entry = key.encode(), key
            else:
                prefixes.append(rolled)
                cursor, last_entry = rolled.encode() + PAST_EVERY_UTF8_SUFFIX, rolled
                stopped_early = True  # seek past everything under the prefix
            if len(found) + len(prefixes) == max_keys:
                stopped_early = True
            if stopped_early:
                break
        if not stopped_early and not more:
            # The whole rest of the listing was in this batch: nothing follows the page.
            return Page(
                await _with_summaries(found, summaries), prefixes, False, cursor, last_entry
            )
    following, _ = await keys(prefix, cursor, 1)
    page_keys = await _with_summaries(found, summaries)
    return Page(page_keys, prefixes, bool(following), cursor, last_entry)


async def _with_summaries(
    found: list[tuple[str, CID]], summaries: SummaryLoader
) -> list[tuple[str, ObjectSummary]]:
    loaded = await summaries([cid for _, cid in found])
    return [(key, summary) for (key, _), summary in zip(found, loaded, strict=True)]


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


__all__ = ["Page", "list_page", "render_v1", "render_v2", "text"]
