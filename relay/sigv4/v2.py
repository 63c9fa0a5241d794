"""S3's legacy signature, SigV2: verifying the header and presigned-query forms.

Theory of operation. A SigV2 signature is base64(HMAC-SHA1(secret, string to sign)) with
the secret itself as the key (no derivation, no scope, no region), where::

    string to sign = VERB \\n Content-MD5 \\n Content-Type \\n Date \\n
                     canonicalized x-amz-* headers (each "name:value\\n")
                     canonicalized resource

- ``Date`` is the ``Date`` header, except that it is empty when ``x-amz-date`` is sent
  (the x-amz-date then signs the time as one of the x-amz-* headers), and that a
  presigned URL puts its ``Expires`` (epoch seconds) there instead.
- The x-amz-* headers: lowercase names, sorted; each header's values stripped and joined
  with ``,``. A presigned URL carries them (and Content-Type / Content-MD5) as query
  parameters named in lowercase, which botocore's presigner does and S3 reads.
- The canonicalized resource: ``/bucket`` for a virtual-hosted request (the bucket its
  Host names), then the path exactly as on the wire (S3 and every signer use the
  percent-encoded form; a bucket's own resource is ``/bucket/`` whether or not the path
  ends in a slash), then the *sub-resources* present in the query, sorted by name,
  each ``name`` or ``name=value`` with the value percent-decoded. Only S3's fixed list of
  sub-resources takes part: every other parameter is unsigned.

The header form is ``Authorization: AWS <access key id>:<signature>`` and its Date (or
x-amz-date) must be within 15 minutes of the server's clock; the query form is
``AWSAccessKeyId``, ``Expires`` and ``Signature``, refused once ``Expires`` has passed.
The body is never signed: a request is ``UNSIGNED-PAYLOAD`` unless it sends a hex
``x-amz-content-sha256``, which is then compared with the body as for SigV4.

``signature`` and ``signatures_equal`` are the reusable pieces: a browser form upload's
SigV2 policy signature is the same HMAC-SHA1 over the base64 policy document.

Like the rest of this package: pure code, no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import unquote_to_bytes

from relay.sigv4 import canonical as c
from relay.sigv4.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)
from relay.sigv4.verify import (
    MAX_CLOCK_SKEW_SECONDS,
    SecretLookup,
    VerifiedRequest,
    parse_amz_date,
)

# The Authorization header's scheme: "AWS AKID:signature".
HEADER_PREFIX: Final = "AWS "
QUERY_ACCESS_KEY: Final = "AWSAccessKeyId"
QUERY_EXPIRES: Final = "Expires"
QUERY_SIGNATURE: Final = "Signature"
# Any of these in the query makes a request a SigV2 presigned one (Expires alone does not:
# it is also an ordinary header name some clients put in a query by mistake).
_QUERY_MARKERS: Final = frozenset({QUERY_ACCESS_KEY.encode(), QUERY_SIGNATURE.encode()})

# The query parameters that are part of the canonicalized resource: S3's sub-resources
# and the response-header overrides, exactly the list botocore signs (AWS's
# RESTAuthentication list and the later sub-resources). Configurations newer than SigV2's
# last client changes (policyStatus, publicAccessBlock...) are not in it: signers leave
# them out of the string to sign, so relay must too.
SUBRESOURCES: Final = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete",
        "inventory", "lifecycle", "location", "logging", "metrics", "notification",
        "object-lock", "partNumber", "policy", "replication", "requestPayment",
        "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language", "response-content-type",
        "response-expires", "restore", "select", "select-type", "storageClass", "tagging",
        "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
    }
)  # fmt: skip

# Headers that a presigned URL may carry in its query instead (botocore moves them there).
_QUERY_HEADERS: Final = ("content-md5", "content-type")


def is_v2_request(headers: Mapping[str, list[str]], pairs: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a request is signed (or claims to be) with SigV2: ``Authorization: AWS ...``
    or an ``AWSAccessKeyId`` / ``Signature`` query parameter."""
    authorization = headers.get("authorization")
    if authorization:
        return authorization[0].startswith(HEADER_PREFIX)
    return any(name in _QUERY_MARKERS for name, _ in pairs)


def signature(secret: str, string_to_sign_text: str) -> str:
    """base64(HMAC-SHA1(secret, text)): a SigV2 request's, or a SigV2 POST policy's
    (whose text is the base64 policy document)."""
    digest = hmac.new(
        c.to_wire_bytes(secret), c.to_wire_bytes(string_to_sign_text), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of two base64 signatures (case matters in base64)."""
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


def canonical_resource(wire_path: str, wire_query: str, *, host_bucket: str | None = None) -> str:
    """``[/bucket]`` + the wire path + ``?`` and the sorted sub-resources, if any."""
    resource = (f"/{host_bucket}" if host_bucket is not None else "") + (wire_path or "/")
    subresources = []
    for part in wire_query.split("&"):
        name, equals, value = part.partition("=")
        if name in SUBRESOURCES:
            decoded = unquote_to_bytes(value).decode("utf-8", "surrogateescape")
            subresources.append(f"{name}={decoded}" if equals else name)
    if subresources:
        # Sorted by name only, as signers do; repeated names keep their order.
        subresources.sort(key=lambda item: item.partition("=")[0])
        resource += "?" + "&".join(subresources)
    return resource


def canonical_amz_headers(headers: Mapping[str, Sequence[str]]) -> str:
    """``name:value\\n`` for each x-amz-* header (lowercase), sorted, values joined by ``,``."""
    lines = []
    for name in sorted(headers):
        if name.startswith("x-amz-"):
            lines.append(f"{name}:{','.join(value.strip() for value in headers[name])}\n")
    return "".join(lines)


def string_to_sign(
    method: str,
    *,
    content_md5: str,
    content_type: str,
    date: str,
    amz_headers: Mapping[str, Sequence[str]],
    resource: str,
) -> str:
    return (
        f"{method.upper()}\n{content_md5.strip()}\n{content_type.strip()}\n{date.strip()}\n"
        f"{canonical_amz_headers(amz_headers)}{resource}"
    )


def claimed_access_key(
    headers: Mapping[str, list[str]], pairs: Sequence[tuple[bytes, bytes]]
) -> str:
    """The access key id a SigV2 request names (for the request log), "" if none."""
    authorization = headers.get("authorization")
    if authorization and authorization[0].startswith(HEADER_PREFIX):
        return authorization[0][len(HEADER_PREFIX) :].partition(":")[0].strip()
    for name, value in pairs:
        if name == QUERY_ACCESS_KEY.encode():
            return value.decode("utf-8", "replace")
    return ""


def verify_v2(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, list[str]],
    lookup_secret: SecretLookup,
    now: float,
    *,
    host_bucket: str | None = None,
    region: str,
) -> VerifiedRequest:
    """Authenticate a SigV2 request, or raise the ``SigV4Error`` S3 answers with.

    ``path`` and ``query`` are as received; ``headers`` is the lowercase multimap
    (``canonical.header_multimap``); ``host_bucket`` the bucket a virtual-hosted request's
    Host names. ``region`` is only reported: SigV2 signs none.
    """
    pairs = c.query_pairs(query)
    authorization = headers.get("authorization")
    if authorization and any(name in _QUERY_MARKERS for name, _ in pairs):
        raise InvalidArgument("only one authentication mechanism is allowed")
    if authorization:
        access_key, given = _header_credentials(authorization[0])
        date = _checked_date(headers, now)
        signed_headers = dict(headers)
    else:
        access_key, given, date = _query_credentials(pairs, now)
        signed_headers = _headers_with_query_overrides(headers, pairs)
    payload = _payload_mode(headers)
    secret = lookup_secret(access_key)
    if secret is None:
        raise InvalidAccessKeyId(
            "The AWS Access Key Id you provided does not exist in our records."
        )
    candidates = [
        string_to_sign(
            method,
            content_md5=_first(signed_headers, "content-md5"),
            content_type=_first(signed_headers, "content-type"),
            date=date,
            amz_headers=signed_headers,
            resource=resource,
        )
        for resource in _resources(path, query, host_bucket)
    ]
    if not any(signatures_equal(signature(secret, text), given) for text in candidates):
        raise SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            string_to_sign=candidates[0],
            access_key=access_key,
        )
    return VerifiedRequest(
        access_key=access_key,
        payload=payload,
        seed_signature="",  # nothing chains from a SigV2 signature: the body is unsigned
        signing_key=b"",
        scope="",
        timestamp="",
        region=region,
        presigned=not authorization,
        decoded_content_length=None,
    )


def _resources(path: str, query: str, host_bucket: str | None) -> list[str]:
    """The canonicalized resources a request may have been signed with. A path-style
    request to a bucket itself (``/bucket``) names the resource ``/bucket/``, as S3 and
    botocore write it (botocore signs ``/bucket/`` while sending ``/bucket``); a signer
    that signs the path exactly as sent is accepted too: both name the same resource."""
    sent = canonical_resource(path, query, host_bucket=host_bucket)
    if host_bucket is None and path.count("/") == 1 and len(path) > 1:
        return [canonical_resource(path + "/", query), sent]
    return [sent]


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _header_credentials(value: str) -> tuple[str, str]:
    access_key, colon, given = value[len(HEADER_PREFIX) :].strip().partition(":")
    if not colon or not access_key or not given:
        raise InvalidArgument(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature"
        )
    return access_key, given.strip()


def _request_epoch(text: str) -> float | None:
    """An RFC 1123 date (what SigV2 clients send), or the ISO 8601 basic form."""
    parsed = parse_amz_date(text)
    if parsed is None:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _checked_date(headers: Mapping[str, list[str]], now: float) -> str:
    """The Date line of a header-signed request, once its time is within the skew."""
    amz_date = headers.get("x-amz-date")
    date = headers.get("date")
    sent = (amz_date or date or [""])[0].strip()
    epoch = _request_epoch(sent) if sent else None
    if epoch is None:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    if abs(now - epoch) > MAX_CLOCK_SKEW_SECONDS:
        raise RequestTimeTooSkewed(
            "The difference between the request time and the current time is too large."
        )
    # With x-amz-date the Date line is empty: the time is signed as an x-amz-* header.
    return "" if amz_date else sent


def _query_credentials(pairs: Sequence[tuple[bytes, bytes]], now: float) -> tuple[str, str, str]:
    found: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = c.as_text(raw_name)
        if name in (QUERY_ACCESS_KEY, QUERY_EXPIRES, QUERY_SIGNATURE):
            if name in found:
                raise InvalidArgument(f"{name} is given more than once")
            found[name] = c.as_text(raw_value)
    if len(found) != 3:
        raise AccessDenied(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            "parameters"
        )
    expires = found[QUERY_EXPIRES].strip()
    if not expires.isascii() or not expires.isdigit():
        raise AccessDenied(f"Invalid date (should be seconds since epoch): {expires[:32]}")
    if now > int(expires):
        raise AccessDenied(
            "Request has expired",
            Expires=_iso8601(int(expires)),
            ServerTime=_iso8601(int(now)),
        )
    # base64 has no spaces: a raw "+" the client did not escape came out of form decoding
    # as a space.
    return found[QUERY_ACCESS_KEY], found[QUERY_SIGNATURE].replace(" ", "+"), expires


def _iso8601(epoch: int) -> str:
    return datetime.fromtimestamp(min(epoch, 253402300799), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _headers_with_query_overrides(
    headers: Mapping[str, list[str]], pairs: Sequence[tuple[bytes, bytes]]
) -> dict[str, list[str]]:
    """The headers a presigned URL signed: the request's, with the x-amz-*, Content-Type
    and Content-MD5 its query carries in their place."""
    signed = dict(headers)
    from_query: dict[str, list[str]] = {}
    for raw_name, raw_value in pairs:
        name = c.as_text(raw_name).lower()
        if name.startswith("x-amz-") or name in _QUERY_HEADERS:
            from_query.setdefault(name, []).append(c.as_text(raw_value))
    signed.update(from_query)
    return signed


def _payload_mode(headers: Mapping[str, list[str]]) -> str:
    values = headers.get("x-amz-content-sha256")
    if not values:
        return c.UNSIGNED_PAYLOAD
    payload = values[0].strip()
    if payload == c.UNSIGNED_PAYLOAD:
        return payload
    if len(payload) == 64 and all(ch in "0123456789abcdefABCDEF" for ch in payload):
        return payload.lower()
    raise InvalidRequest(
        "a SigV2 request's x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a sha256 hex "
        "digest: aws-chunked bodies need SigV4"
    )
