"""Verifying an incoming S3 request's SigV4 signature, header or presigned-query form.

Theory of operation. ``verify`` reads the request's credential (the ``Authorization``
header, or ``X-Amz-*`` query parameters for a presigned URL), checks the parts that need
no secret first (well-formed credential, scope date equal to the request date, service and
terminator, clock skew or expiry, ``host`` and every ``x-amz-*`` header signed), then looks
the access key up, rebuilds the canonical request with ``relay.sigv4.canonical`` and
compares signatures in constant time. Nothing here reads a clock: the caller passes ``now``.

The result, ``VerifiedRequest``, is what the body decoder needs to continue the chain of
chunk signatures: the seed signature, the signing key, the scope and the timestamp. The
payload mode it reports is the ``x-amz-content-sha256`` value; when that is a hex digest
the caller must still compare it with the body it receives (``XAmzContentSHA256Mismatch``).

A header-signed request without ``x-amz-content-sha256`` is refused: S3 requires it, and
every client in the recorded vectors sends it. A presigned request uses
``UNSIGNED-PAYLOAD`` unless it carries the header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from relay.sigv4 import canonical as c
from relay.sigv4.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SigV4Error,
)

# AWS refuses requests whose date is more than 15 minutes from its clock.
MAX_CLOCK_SKEW_SECONDS: Final = 15 * 60
# A presigned URL lives at most seven days (AWS's limit for X-Amz-Expires).
MAX_PRESIGNED_EXPIRES_SECONDS: Final = 7 * 24 * 3600

_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE: Final = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_PAYLOAD_MODES: Final = frozenset({c.UNSIGNED_PAYLOAD, *c.STREAMING_MODES})
_PRESIGN_PARAMS: Final = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)

# Any of these in the query makes it a presigned request (or a conflict with the header).
PRESIGN_MARKERS: Final = frozenset({b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature"})

SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """An authenticated request: who sent it and how to verify the rest of its body."""

    access_key: str
    payload: str  # x-amz-content-sha256: hex digest, UNSIGNED-PAYLOAD or a STREAMING-* mode
    seed_signature: str
    signing_key: bytes = field(repr=False)
    scope: str
    timestamp: str  # 20261121T083854Z, as in the string to sign
    region: str
    presigned: bool
    decoded_content_length: int | None  # x-amz-decoded-content-length, when sent

    @property
    def is_streaming(self) -> bool:
        return self.payload in c.STREAMING_MODES


# An access key id as a log may show it: AWS's are 20 characters; anything longer claimed
# by a forged request is cut, so a log line stays a line.
MAX_CLAIMED_KEY_CHARS: Final = 128


def claimed_access_key(headers: c.HeaderPairs, query: str) -> str:
    """The access key id a request *claims* (its Authorization header's or presigned
    credential's), whether or not its signature holds: what a log names for a refusal.
    "" when it names none. Never anything secret: the key id is public, the signature
    is not looked at."""
    authorization = c.header_multimap(headers).get("authorization")
    if authorization:
        credential = authorization[0].partition("Credential=")[2].partition(",")[0]
        return credential.partition("/")[0].strip()[:MAX_CLAIMED_KEY_CHARS]
    for name, value in c.query_pairs(query):
        if name == b"X-Amz-Credential":
            key = value.partition(b"/")[0]
            return key.decode("utf-8", "replace")[:MAX_CLAIMED_KEY_CHARS]
    return ""


def parse_authorization(value: str) -> Authorization:
    """Parse a SigV4 ``Authorization`` value; fields may be separated by ``, `` or ``,``."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != c.ALGORITHM:
        raise AuthorizationHeaderMalformed(
            f"the authorization algorithm must be {c.ALGORITHM}, not {algorithm[:32]!r}"
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep or name in fields:
            raise AuthorizationHeaderMalformed(
                f"malformed or repeated authorization field {name.strip()[:32]!r}"
            )
        fields[name] = field_value.strip()
    missing = {"Credential", "SignedHeaders", "Signature"} - fields.keys()
    if missing or len(fields) != 3:
        raise AuthorizationHeaderMalformed(
            "the authorization header needs exactly Credential, SignedHeaders and Signature"
        )
    access_key, date, region, service, terminator = _split_credential(
        fields["Credential"], AuthorizationHeaderMalformed
    )
    signed_headers = _split_signed_headers(fields["SignedHeaders"], AuthorizationHeaderMalformed)
    signature = fields["Signature"]
    if not _HEX64.fullmatch(signature):
        raise AuthorizationHeaderMalformed("the signature must be 64 hexadecimal digits")
    return Authorization(
        access_key, date, region, service, terminator, signed_headers, signature.lower()
    )


def _split_credential(credential: str, error: type[SigV4Error]) -> tuple[str, str, str, str, str]:
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise error("the credential must be <access key>/<date>/<region>/<service>/aws4_request")
    access_key, date, region, service, terminator = parts
    if not re.fullmatch(r"\d{8}", date):
        raise error(f"the credential date {date[:16]!r} is not YYYYMMDD")
    return access_key, date, region, service, terminator


def _split_signed_headers(value: str, error: type[SigV4Error]) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if not value or any(not name or name != name.lower() for name in names):
        raise error("signed headers must be a ;-separated list of lowercase names")
    return names


def epoch_seconds(now: datetime | float) -> float:
    if isinstance(now, datetime):
        return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    return float(now)


def parse_amz_date(value: str) -> datetime | None:
    # By hand: strptime cost ~10 us a request, a few percent of a small PUT.
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:  # a month 13, a February 30th
        return None


def _request_time(headers: dict[str, list[str]]) -> tuple[str, float]:
    """The request's (SigV4 timestamp, epoch seconds): ``x-amz-date``, else ``Date``."""
    if "x-amz-date" in headers:
        parsed = parse_amz_date(headers["x-amz-date"][0].strip())
    elif "date" in headers:
        try:
            parsed = parsedate_to_datetime(headers["date"][0].strip())
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
    else:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    if parsed is None:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    if "x-amz-date" in headers:  # parsed from exactly this form: use it as sent
        return headers["x-amz-date"][0].strip(), parsed.timestamp()
    return parsed.astimezone(UTC).strftime(c.AMZ_DATE_FORMAT), parsed.timestamp()


def _payload_mode(headers: dict[str, list[str]], *, required: bool) -> str:
    values = headers.get("x-amz-content-sha256")
    if not values:
        if required:
            raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
        return c.UNSIGNED_PAYLOAD
    payload = values[0].strip()
    if payload in _PAYLOAD_MODES:
        return payload
    if _HEX64.fullmatch(payload):
        return payload.lower()
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* mode or a sha256 hex digest"
    )


def _decoded_content_length(headers: dict[str, list[str]]) -> int | None:
    values = headers.get("x-amz-decoded-content-length")
    if not values:
        return None
    text = values[0].strip()
    if not text.isdigit():
        raise InvalidArgument("x-amz-decoded-content-length must be a non-negative integer")
    return int(text)


def _check_scope(
    *,
    date: str,
    region: str,
    service: str,
    terminator: str,
    timestamp: str,
    expected_region: str | None,
    expected_service: str,
    error: type[SigV4Error],
) -> None:
    if date != timestamp[:8]:
        raise error(f"the credential date {date} does not match the request date {timestamp[:8]}")
    if expected_region is not None and region != expected_region:
        raise error(
            f"the region {region[:64]!r} is wrong; expecting {expected_region!r}",
            Region=expected_region,
        )
    if service != expected_service:
        raise error(
            f"the credential service {service[:64]!r} is wrong; expecting {expected_service!r}"
        )
    if terminator != c.TERMINATOR:
        raise error(f"the credential must end with {c.TERMINATOR!r}")


def _check_signed_header_set(
    signed: tuple[str, ...], headers: dict[str, list[str]], *, require_amz_signed: bool
) -> None:
    if "host" not in signed:
        raise AccessDenied("the host header must be signed")
    for name in signed:
        if name not in headers:
            raise AccessDenied(f"signed header {name[:64]!r} is not in the request")
    if require_amz_signed:
        unsigned = sorted(n for n in headers if n.startswith("x-amz-") and n not in signed)
        if unsigned:
            raise AccessDenied(
                "There were headers present in the request which were not signed: "
                + ", ".join(unsigned)
            )


def verify(
    method: str,
    path: str,
    query: str,
    headers: c.HeaderPairs,
    lookup_secret: SecretLookup,
    now: datetime | float,
    *,
    region: str | None = None,
    service: str = "s3",
) -> VerifiedRequest:
    """Authenticate one request, or raise the ``SigV4Error`` S3 would answer with.

    ``path`` and ``query`` are as received (still percent-encoded, no ``?``); ``headers``
    are (name, value) pairs in any case, str or bytes. ``region=None`` accepts whichever
    region the client signed for. ``now`` is a datetime (naive means UTC) or epoch seconds.
    """
    header_map = c.header_multimap(headers)
    pairs = c.query_pairs(query)
    query_names = {name for name, _ in pairs}
    authorization = header_map.get("authorization")
    if authorization and query_names & PRESIGN_MARKERS:
        raise InvalidArgument("only one authentication mechanism is allowed")
    if authorization:
        return _verify_header_form(
            method, path, query, header_map, authorization[0], lookup_secret, now, region, service
        )
    if query_names & PRESIGN_MARKERS:
        return _verify_query_form(
            method, path, query, pairs, header_map, lookup_secret, now, region, service
        )
    raise AccessDenied("anonymous requests are not allowed: sign the request with SigV4")


def _verify_header_form(
    method: str,
    path: str,
    query: str,
    headers: dict[str, list[str]],
    authorization_value: str,
    lookup_secret: SecretLookup,
    now: datetime | float,
    expected_region: str | None,
    expected_service: str,
) -> VerifiedRequest:
    if not authorization_value.startswith(c.ALGORITHM + " "):
        raise InvalidRequest(
            f"the authorization mechanism you provided is not supported; use {c.ALGORITHM}"
        )
    auth = parse_authorization(authorization_value)
    timestamp, request_epoch = _request_time(headers)
    _check_scope(
        date=auth.date,
        region=auth.region,
        service=auth.service,
        terminator=auth.terminator,
        timestamp=timestamp,
        expected_region=expected_region,
        expected_service=expected_service,
        error=AuthorizationHeaderMalformed,
    )
    payload = _payload_mode(headers, required=True)
    if abs(epoch_seconds(now) - request_epoch) > MAX_CLOCK_SKEW_SECONDS:
        raise RequestTimeTooSkewed(
            "the difference between the request time and the server's time is too large"
        )
    _check_signed_header_set(auth.signed_headers, headers, require_amz_signed=True)
    secret = lookup_secret(auth.access_key)
    if secret is None:
        raise InvalidAccessKeyId("the access key id you provided does not exist in our records")
    key = c.signing_key(secret, auth.date, auth.region, auth.service)
    canonical_request = c.canonical_request(
        method=method,
        wire_path=path,
        canonical_query_string=c.canonical_query_from_wire(query),
        signed_names=auth.signed_headers,
        headers=headers,
        payload_hash=payload,
    )
    _check_signature(key, timestamp, auth.scope, canonical_request, auth.signature)
    return VerifiedRequest(
        access_key=auth.access_key,
        payload=payload,
        seed_signature=auth.signature,
        signing_key=key,
        scope=auth.scope,
        timestamp=timestamp,
        region=auth.region,
        presigned=False,
        decoded_content_length=_decoded_content_length(headers),
    )


def _verify_query_form(
    method: str,
    path: str,
    query: str,
    pairs: list[tuple[bytes, bytes]],
    headers: dict[str, list[str]],
    lookup_secret: SecretLookup,
    now: datetime | float,
    expected_region: str | None,
    expected_service: str,
) -> VerifiedRequest:
    params: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = c.as_text(raw_name)
        if name in _PRESIGN_PARAMS:
            if name in params:
                raise AuthorizationQueryParametersError(f"{name} is given more than once")
            params[name] = c.as_text(raw_value)
    missing = [name for name in _PRESIGN_PARAMS if name not in params]
    if missing:
        raise AuthorizationQueryParametersError(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            f"X-Amz-Expires parameters; missing {', '.join(missing)}"
        )
    if params["X-Amz-Algorithm"] != c.ALGORITHM:
        raise AuthorizationQueryParametersError(f"X-Amz-Algorithm must be {c.ALGORITHM}")
    access_key, date, region, service, terminator = _split_credential(
        params["X-Amz-Credential"], AuthorizationQueryParametersError
    )
    signed_headers = _split_signed_headers(
        params["X-Amz-SignedHeaders"], AuthorizationQueryParametersError
    )
    given_signature = params["X-Amz-Signature"]
    if not _HEX64.fullmatch(given_signature):
        raise AuthorizationQueryParametersError("X-Amz-Signature must be 64 hexadecimal digits")
    timestamp = params["X-Amz-Date"]
    request_time = parse_amz_date(timestamp)
    if request_time is None:
        raise AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'"
        )
    expires_text = params["X-Amz-Expires"]
    if not expires_text.isdigit() or not 0 <= int(expires_text) <= MAX_PRESIGNED_EXPIRES_SECONDS:
        raise AuthorizationQueryParametersError(
            "X-Amz-Expires must be a number of seconds from 0 to 604800 (seven days)"
        )
    _check_scope(
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        timestamp=timestamp,
        expected_region=expected_region,
        expected_service=expected_service,
        error=AuthorizationQueryParametersError,
    )
    payload = _payload_mode(headers, required=False)
    now_epoch = epoch_seconds(now)
    request_epoch = request_time.timestamp()
    if request_epoch - now_epoch > MAX_CLOCK_SKEW_SECONDS:
        raise RequestTimeTooSkewed("the presigned URL's X-Amz-Date is in the future")
    # A URL valid for zero seconds has expired by the time anyone uses it (AWS: 403).
    if int(expires_text) == 0 or now_epoch > request_epoch + int(expires_text):
        raise AccessDenied("Request has expired")
    _check_signed_header_set(signed_headers, headers, require_amz_signed=False)
    secret = lookup_secret(access_key)
    if secret is None:
        raise InvalidAccessKeyId("the access key id you provided does not exist in our records")
    key = c.signing_key(secret, date, region, service)
    scope = c.credential_scope(date, region, service)
    canonical_request = c.canonical_request(
        method=method,
        wire_path=path,
        canonical_query_string=c.canonical_query_from_wire(
            query, exclude=frozenset({b"X-Amz-Signature"})
        ),
        signed_names=signed_headers,
        headers=headers,
        payload_hash=payload,
    )
    _check_signature(key, timestamp, scope, canonical_request, given_signature)
    return VerifiedRequest(
        access_key=access_key,
        payload=payload,
        seed_signature=given_signature.lower(),
        signing_key=key,
        scope=scope,
        timestamp=timestamp,
        region=region,
        presigned=True,
        decoded_content_length=_decoded_content_length(headers),
    )


def _check_signature(
    key: bytes, timestamp: str, scope: str, canonical_request: str, given: str
) -> None:
    to_sign = c.string_to_sign(timestamp, scope, canonical_request)
    if not c.signatures_equal(c.signature(key, to_sign), given):
        raise SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            canonical_request=canonical_request,
            string_to_sign=to_sign,
        )
