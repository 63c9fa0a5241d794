"""Signing outgoing requests: the Authorization-header form and presigned URLs.

Both produce what botocore's ``S3SigV4Auth`` / ``S3SigV4QueryAuth`` produce for the same
inputs and time (the tests check it), from the same canonical forms ``verify`` uses.
Headers botocore never signs (hop-by-hop ones, ``user-agent``, ``expect``...) are left
out here too, so a proxy rewriting them cannot break the signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from relay.sigv4 import canonical as c

# Headers botocore leaves unsigned (botocore.auth.SIGNED_HEADERS_BLACKLIST).
UNSIGNED_HEADERS: Final = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


def amz_timestamp(now: datetime | float) -> str:
    """``now`` (a datetime, naive meaning UTC, or epoch seconds) as ``YYYYMMDDTHHMMSSZ``."""
    if isinstance(now, datetime):
        moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(now, UTC)
    return moment.astimezone(UTC).strftime(c.AMZ_DATE_FORMAT)


def sign_headers(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: c.HeaderPairs,
    *,
    payload_hash: str,
    access_key: str,
    secret: str,
    region: str,
    service: str,
    now: datetime | float,
) -> list[tuple[str, str]]:
    """The headers to add to sign a request: ``Authorization``, ``X-Amz-Date``,
    ``X-Amz-Content-SHA256``.

    ``host`` is the Host header the request will carry; ``path`` and ``query`` are exactly
    as they will be sent (percent-encoded; see ``quote_path``). ``headers`` are the other
    headers the request will carry; all but ``UNSIGNED_HEADERS`` are signed, so send them
    unchanged. ``payload_hash`` is the body's hex sha256, ``UNSIGNED-PAYLOAD`` or a
    ``STREAMING-*`` mode.
    """
    timestamp = amz_timestamp(now)
    header_map = {
        name: values
        for name, values in c.header_multimap(headers).items()
        if name not in UNSIGNED_HEADERS
        and name not in {"authorization", "x-amz-date", "x-amz-content-sha256"}
    }
    header_map.setdefault("host", [host])
    header_map["x-amz-date"] = [timestamp]
    header_map["x-amz-content-sha256"] = [payload_hash]
    signed_names = sorted(header_map)
    date = timestamp[:8]
    scope = c.credential_scope(date, region, service)
    canonical_request = c.canonical_request(
        method=method,
        wire_path=path,
        canonical_query_string=c.canonical_query_from_wire(query),
        signed_names=signed_names,
        headers=header_map,
        payload_hash=payload_hash,
    )
    key = c.signing_key(secret, date, region, service)
    sig = c.signature(key, c.string_to_sign(timestamp, scope, canonical_request))
    authorization = (
        f"{c.ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed_names)}, Signature={sig}"
    )
    return [
        ("X-Amz-Date", timestamp),
        ("X-Amz-Content-SHA256", payload_hash),
        ("Authorization", authorization),
    ]


def signed_host(scheme: str, host: str) -> str:
    """The host botocore signs for a URL: lowercase, the scheme's default port dropped."""
    if host.startswith("["):  # an IPv6 literal: [::1]:8080
        bracket_end = host.find("]") + 1
        name, rest = host[:bracket_end], host[bracket_end:]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    name = name.lower()
    if port and port != _DEFAULT_PORTS.get(scheme.lower()):
        return f"{name}:{port}"
    return name


def presign_url(
    method: str,
    scheme: str,
    host: str,
    path: str,
    query: Sequence[tuple[str, str]],
    *,
    access_key: str,
    secret: str,
    region: str,
    service: str,
    now: datetime | float,
    expires: int,
) -> str:
    """A SigV4 query-presigned URL, as botocore's ``S3SigV4QueryAuth`` builds it.

    ``path`` is as it will be sent (percent-encoded); ``query`` holds decoded (name, value)
    pairs of the operation's own parameters. Only ``host`` is signed, and the payload is
    ``UNSIGNED-PAYLOAD``.
    """
    if not 1 <= expires <= 7 * 24 * 3600:
        raise ValueError("expires must be from 1 second to 7 days")
    timestamp = amz_timestamp(now)
    date = timestamp[:8]
    scope = c.credential_scope(date, region, service)
    auth_params = [
        ("X-Amz-Algorithm", c.ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", timestamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    wire_query = "&".join(
        f"{c.uri_encode(name)}={c.uri_encode(value)}" for name, value in [*query, *auth_params]
    )
    canonical_request = c.canonical_request(
        method=method,
        wire_path=path,
        canonical_query_string=c.canonical_query_from_wire(wire_query),
        signed_names=["host"],
        headers={"host": [signed_host(scheme, host)]},
        payload_hash=c.UNSIGNED_PAYLOAD,
    )
    key = c.signing_key(secret, date, region, service)
    sig = c.signature(key, c.string_to_sign(timestamp, scope, canonical_request))
    return f"{scheme}://{host}{path}?{wire_query}&X-Amz-Signature={sig}"
