"""What every S3 handler receives, and the small helpers they share."""

from __future__ import annotations

import base64
import binascii
import email.utils
from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from relay.bucket.engine import Engine
from relay.bucket.multipart import Multipart
from relay.http import Request, RequestBody, Response
from relay.s3.errors import InvalidArgument
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
