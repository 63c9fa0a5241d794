"""One entry point for every signed S3 request: SigV4 or SigV2, whichever it carries.

``authenticate`` looks at how a request is signed and hands it to ``verify`` (SigV4:
``AWS4-HMAC-SHA256`` header or ``X-Amz-*`` query) or ``v2.verify_v2`` (SigV2: ``AWS``
header or ``AWSAccessKeyId`` / ``Signature`` query); both return a ``VerifiedRequest``.
A request signed both ways is refused, as S3 refuses it.
"""

from __future__ import annotations

from datetime import datetime

from relay.sigv4 import canonical as c
from relay.sigv4 import v2
from relay.sigv4 import verify as v4
from relay.sigv4.errors import InvalidArgument


def authenticate(
    method: str,
    path: str,
    query: str,
    headers: c.HeaderPairs,
    lookup_secret: v4.SecretLookup,
    now: datetime | float,
    *,
    region: str | None = None,
    host_bucket: str | None = None,
) -> v4.VerifiedRequest:
    """Authenticate one request, or raise the ``SigV4Error`` S3 would answer with.

    As ``verify``; ``host_bucket`` is the bucket a virtual-hosted request's Host names
    (SigV2 signs it as part of the resource; SigV4 signs the Host header itself).
    """
    header_map = c.header_multimap(headers)
    pairs = c.query_pairs(query)
    if v2.is_v2_request(header_map, pairs):
        if any(name in v4.PRESIGN_MARKERS for name, _ in pairs):
            raise InvalidArgument("only one authentication mechanism is allowed")
        return v2.verify_v2(
            method,
            path,
            query,
            header_map,
            lookup_secret,
            v4.epoch_seconds(now),
            host_bucket=host_bucket,
            region=region or "us-east-1",
        )
    return v4.verify(method, path, query, headers, lookup_secret, now, region=region)


def claimed_access_key(headers: c.HeaderPairs, query: str) -> str:
    """The access key id a request *claims*, SigV4 or SigV2, whether or not its
    signature holds: what a log names for a refusal; "" when it names none."""
    claimed = v2.claimed_access_key(c.header_multimap(headers), c.query_pairs(query))
    return claimed[: v4.MAX_CLAIMED_KEY_CHARS] or v4.claimed_access_key(headers, query)
