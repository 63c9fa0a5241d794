"""The redirect target for a key in a configured bucket: a SigV4 query-presigned GET.

Byte for byte what botocore's ``generate_presigned_url("get_object", ...)`` returns for
the same bucket, key, credentials, time and expiry (the tests compare them), addressed as
``matching.object_url_parts`` says.
"""

from __future__ import annotations

from datetime import datetime

from relay.roundabout.matching import SigningBucket, object_url_parts
from relay.sigv4 import presign_url, quote_path

MAX_EXPIRES_SECONDS = 7 * 24 * 3600  # SigV4's own limit for a presigned URL
DEFAULT_EXPIRES_SECONDS = 3 * 24 * 3600  # what existing roundabout clients get by default


def presigned_get(
    bucket: SigningBucket, key: str, *, now: datetime | float, expires_seconds: int
) -> str:
    """A presigned GET of ``key`` (the full key, prefix included) in ``bucket``."""
    scheme, host, path = object_url_parts(bucket, key)
    return presign_url(
        "GET",
        scheme,
        host,
        quote_path(path),
        [],
        access_key=bucket.access_key_id,
        secret=bucket.secret_access_key,
        region=bucket.region,
        service="s3",
        now=now,
        expires=expires_seconds,
    )
