"""Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since.

Reads (GET, HEAD) follow RFC 7232 as S3 applies it: If-Match is checked first and, when
present, If-Unmodified-Since is ignored; If-None-Match likewise overrides
If-Modified-Since. A failed If-Match / If-Unmodified-Since is 412; a matching
If-None-Match or an unmodified object under If-Modified-Since is 304 Not Modified.
Copy sources use the same four headers prefixed ``x-amz-copy-source-``, where every
failure is 412. Writes (PUT, CompleteMultipartUpload) take ``If-None-Match: *`` and
``If-Match: "etag"``, turned here into a precondition the bucket's writer decides
atomically at commit time; DeleteObject takes ``If-Match`` the same way.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

from relay.bucket import Manifest, Precondition
from relay.bucket import errors as engine_errors
from relay.s3.errors import NotImplemented_, PreconditionFailed
from relay.s3.xml import unquote_etag


class NotModified(Exception):
    """The read's answer is 304."""


def _etags(value: str) -> list[str]:
    return [unquote_etag(part) for part in value.split(",") if part.strip()]


def _matches(value: str, etag: str) -> bool:
    tags = _etags(value)
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def _date_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None  # an unparsable date is ignored, as HTTP says


def _modified_after(manifest: Manifest, seconds: float) -> bool:
    # HTTP dates have whole seconds: compare at that granularity.
    return manifest.last_modified_ms // 1000 > int(seconds)


def check_read(headers: Mapping[str, str], manifest: Manifest, *, prefix: str = "") -> None:
    """Raise PreconditionFailed (412) or NotModified (304) as the headers demand.

    With ``prefix="x-amz-copy-source-"`` (a copy source), a "not modified" is a 412 too.
    """
    if_match = headers.get(prefix + "if-match")
    if_none_match = headers.get(prefix + "if-none-match")
    if_modified = _date_seconds(headers.get(prefix + "if-modified-since"))
    if_unmodified = _date_seconds(headers.get(prefix + "if-unmodified-since"))
    if if_match is not None:
        if not _matches(if_match, manifest.etag):
            raise PreconditionFailed(Condition="If-Match")
    elif if_unmodified is not None and _modified_after(manifest, if_unmodified):
        raise PreconditionFailed(Condition="If-Unmodified-Since")
    not_modified = False
    if if_none_match is not None:
        not_modified = _matches(if_none_match, manifest.etag)
    elif if_modified is not None:
        not_modified = not _modified_after(manifest, if_modified)
    if not_modified:
        if prefix:
            raise PreconditionFailed(Condition=f"{prefix}if-none-match")
        raise NotModified()


def write_precondition(headers: Mapping[str, str], bucket: str, key: str) -> Precondition | None:
    """The writer-side check for a conditional PUT or CompleteMultipartUpload."""
    if_none_match = headers.get("if-none-match")
    if_match = headers.get("if-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise NotImplemented_("If-None-Match on a write supports only '*'")
    if if_none_match is None and if_match is None:
        return None

    def check(current: Manifest | None) -> None:
        if if_none_match is not None and current is not None:
            raise engine_errors.PreconditionFailed("the key exists (If-None-Match: *)")
        if if_match is not None:
            if current is None:
                raise engine_errors.NoSuchKey(bucket, key)
            if not _matches(if_match, current.etag):
                raise engine_errors.PreconditionFailed("the ETag differs (If-Match)")

    return check


def delete_precondition(headers: Mapping[str, str], bucket: str, key: str) -> Precondition | None:
    """DeleteObject's If-Match (S3 defines no If-None-Match for deletes): 412 when the ETag
    differs, 404 NoSuchKey when there is no object, as S3 answers."""
    if_match = headers.get("if-match")
    if if_match is None:
        return None
    return write_precondition({"if-match": if_match}, bucket, key)
