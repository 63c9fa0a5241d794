"""The SigV4 canonical forms and HMAC chain that signing, verifying and presigning share.

Theory of operation. A SigV4 signature is HMAC-SHA256, under a key derived from the secret
and the credential scope, of a *string to sign* that hashes a *canonical request*::

    canonical request = METHOD \\n canonical URI \\n canonical query \\n
                        canonical headers (each "name:value\\n") \\n signed headers \\n
                        payload hash
    string to sign    = AWS4-HMAC-SHA256 \\n 20261121T083854Z \\n 20261121/us-east-1/s3/aws4_request
                        \\n hex(sha256(canonical request))
    signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
                        "aws4_request")

Both sides must build byte-identical canonical requests, so every rule lives here once:

- Canonical URI, for S3: the path exactly as it travels on the wire (S3 neither
  normalizes ``.``/``..``/``//`` nor encodes it a second time); an empty path is ``/``.
- Canonical query: each ``name=value`` pair is percent-decoded to bytes, then re-encoded
  with RFC 3986's unreserved characters (``A-Za-z0-9-_.~``) kept and every other byte
  written ``%XX`` (uppercase); pairs sorted by encoded name, then value. Decoding first
  makes ``a%2fb``, ``a%2Fb`` and ``a/b`` canonicalize alike, as the server must accept
  whatever spelling the client put on the wire. In the query (not the path) ``+`` decodes
  to a space, as in form encoding: SDKs write a literal plus as ``%2B``, but some
  clients (botocore's own ``AWSRequest.prepare`` with ``params``) write a space as ``+``
  while signing it as ``%20``. MinIO and Garage decode the query the same way.
- Canonical headers: lowercase names; values with leading/trailing whitespace removed and
  internal whitespace runs collapsed to one space; repeated headers joined with ``,``; in
  the order the signed-headers list gives (which signers sort).

Header values may arrive as bytes (h11 gives bytes); they are decoded as UTF-8 with
``surrogateescape`` and the canonical request is encoded back the same way, so any byte
sequence survives the round trip exactly.

The signing key depends only on (secret, date, region, service): it is cached, since a
streaming upload signs every chunk with the same key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final
from urllib.parse import quote, unquote_to_bytes

ALGORITHM: Final = "AWS4-HMAC-SHA256"
TERMINATOR: Final = "aws4_request"
AMZ_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"

UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED_PAYLOAD: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_PAYLOAD_TRAILER: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER: Final = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES: Final = frozenset(
    {STREAMING_SIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER}
)
SIGNED_STREAMING_MODES: Final = frozenset(
    {STREAMING_SIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD_TRAILER}
)
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()

# RFC 3986 unreserved characters besides letters and digits, which quote() always keeps.
_UNRESERVED_PUNCTUATION: Final = "-_.~"

HeaderPairs = Sequence[tuple[str | bytes, str | bytes]]


def as_text(value: str | bytes) -> str:
    """Header/query text from the wire: bytes decoded losslessly (see module docstring)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def to_wire_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def uri_encode(value: str | bytes) -> str:
    """RFC 3986 percent-encoding: unreserved characters kept, every other byte ``%XX``."""
    raw = to_wire_bytes(value) if isinstance(value, str) else value
    return quote(raw, safe=_UNRESERVED_PUNCTUATION)


def quote_path(key_path: str) -> str:
    """A decoded path (``/bucket/my key``) as botocore puts it on the wire (``/`` kept)."""
    return quote(to_wire_bytes(key_path), safe="/~")


def canonical_uri(wire_path: str) -> str:
    return wire_path or "/"


def query_pairs(wire_query: str) -> list[tuple[bytes, bytes]]:
    """The query string split into percent-decoded (name, value) pairs, empty parts skipped."""
    pairs = []
    for part in wire_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_query_unquote(name), _query_unquote(value)))
    return pairs


def _query_unquote(text: str) -> bytes:
    return unquote_to_bytes(text.replace("+", " "))


def canonical_query(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> str:
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_query_from_wire(wire_query: str, *, exclude: frozenset[bytes] = frozenset()) -> str:
    return canonical_query(
        (name, value) for name, value in query_pairs(wire_query) if name not in exclude
    )


def trim_header_value(value: str) -> str:
    """Trimall: strip both ends, collapse internal whitespace runs to one space."""
    return " ".join(value.split())


def header_multimap(headers: HeaderPairs) -> dict[str, list[str]]:
    """Lowercased name → values in arrival order."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        found.setdefault(as_text(name).strip().lower(), []).append(as_text(value))
    return found


def canonical_headers(signed_names: Sequence[str], headers: dict[str, list[str]]) -> str:
    """``name:value\\n`` for each signed header (names already lowercase), in the given order."""
    lines = []
    for name in signed_names:
        value = ",".join(trim_header_value(v) for v in headers.get(name, ()))
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def canonical_request(
    *,
    method: str,
    wire_path: str,
    canonical_query_string: str,
    signed_names: Sequence[str],
    headers: dict[str, list[str]],
    payload_hash: str,
) -> str:
    return "\n".join(
        [
            method.upper(),
            canonical_uri(wire_path),
            canonical_query_string,
            canonical_headers(signed_names, headers),
            ";".join(signed_names),
            payload_hash,
        ]
    )


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/{TERMINATOR}"


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(to_wire_bytes(data) if isinstance(data, str) else data).hexdigest()


def string_to_sign(timestamp: str, scope: str, canonical_request_text: str) -> str:
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{sha256_hex(canonical_request_text)}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, to_wire_bytes(message), hashlib.sha256).digest()


# Keys are cached per scope; 1024 covers many access keys across a date change.
@lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(to_wire_bytes("AWS4" + secret), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, TERMINATOR)


def signature(key: bytes, string_to_sign_text: str) -> str:
    return hmac.new(key, to_wire_bytes(string_to_sign_text), hashlib.sha256).hexdigest()


def chunk_string_to_sign(
    timestamp: str, scope: str, previous_signature: str, chunk_sha256_hex: str
) -> str:
    return (
        f"{ALGORITHM}-PAYLOAD\n{timestamp}\n{scope}\n{previous_signature}\n"
        f"{EMPTY_SHA256}\n{chunk_sha256_hex}"
    )


def canonical_trailers(trailers: Sequence[tuple[str, str]]) -> str:
    """The trailing headers as signed: ``name:value\\n`` each, sorted by name."""
    return "".join(f"{name}:{value}\n" for name, value in sorted(trailers))


def trailer_string_to_sign(
    timestamp: str, scope: str, previous_signature: str, trailers: Sequence[tuple[str, str]]
) -> str:
    return (
        f"{ALGORITHM}-TRAILER\n{timestamp}\n{scope}\n{previous_signature}\n"
        f"{sha256_hex(canonical_trailers(trailers))}"
    )


def signatures_equal(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace"))
