"""What every S3 handler receives, and the small helpers they share."""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field

from relay.access.decide import BucketAccess
from relay.bucket import Engine, Multipart
from relay.chunker import Checksum, checksum_of
from relay.http import Request, RequestBody, Response
from relay.s3.errors import BadDigest, InvalidArgument, InvalidDigest
from relay.s3.routing import Target
from relay.sigv4 import VerifiedRequest


@dataclass
class Context:
    request: Request
    body: RequestBody
    auth: VerifiedRequest
    target: Target
    headers: dict[str, str]  # lowercase name -> first value
    request_id: str
    engine: Engine
    multipart: Multipart
    region: str
    owner: str = field(init=False)
    # An unsigned request: ``auth`` is then a stand-in with no key (relay.s3.app).
    anonymous: bool = False
    # relay's access key ids: who an ACL grant or a policy may name.
    known_principals: frozenset[str] = frozenset()
    # Buckets relay.s3.access.authorize has let this request act on.
    authorized: set[str] = field(default_factory=set)
    # The settings of the request's bucket, as authorize read them.
    bucket_access: BucketAccess | None = None

    def __post_init__(self) -> None:
        self.owner = self.auth.access_key

    @property
    def query(self) -> dict[str, str]:
        return self.target.query

    def content_length(self) -> int | None:
        return self.request.content_length


def xml_response(
    status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(
        status,
        [("content-type", "application/xml"), *(headers or [])],
        body,
        content_length=len(body),
    )


def empty_response(status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [*(headers or []), ("content-length", "0")], b"", content_length=0)


def http_date(ms: int) -> str:
    return email.utils.formatdate(ms / 1000, usegmt=True)


def decode_base64_digest(value: str, size: int, name: str) -> bytes:
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{name} is not valid base64") from None
    if len(digest) != size:
        raise InvalidArgument(f"{name} has the wrong length")
    return digest


async def drain(source: AsyncIterable[bytes], limit: int) -> bytes:
    """Read a small request body (XML) whole, refusing more than ``limit`` bytes."""
    parts = []
    total = 0
    async for piece in source:
        total += len(piece)
        if total > limit:
            raise InvalidArgument("the request body is too large")
        parts.append(piece)
    return b"".join(parts)


def check_body_digests(
    headers: Mapping[str, str], body: bytes, trailers: Iterable[tuple[str, str]] = ()
) -> None:
    """Compare a small request body (XML) with its Content-MD5 and x-amz-checksum-* values.

    SDKs send one of these with every request that carries a configuration (DeleteObjects,
    PutObjectTagging, the ACLs, PutBucketVersioning): a value never compared would be an
    integrity check the client believes was made. Raises BadDigest (400) when one differs.
    """
    given = {**headers, **dict(trailers)}
    content_md5 = given.get("content-md5")
    if content_md5 is not None:
        try:
            expected_md5 = decode_base64_digest(content_md5, 16, "Content-MD5")
        except InvalidArgument:
            raise InvalidDigest() from None
        if hashlib.md5(body).digest() != expected_md5:
            raise BadDigest("The Content-MD5 you specified did not match what we received.")
    for kind in Checksum:
        name = f"x-amz-checksum-{kind.value}"
        if name in given:
            actual = checksum_of(kind, body)
            if decode_base64_digest(given[name], len(actual), name) != actual:
                raise BadDigest(
                    f"The {kind.value.upper()} you specified did not match the calculated checksum."
                )
