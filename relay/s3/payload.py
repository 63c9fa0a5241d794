"""A request body as the engine wants it: the object's bytes, decoded and checked.

``Payload`` turns the raw HTTP body into the object's bytes according to how the client
signed it (``x-amz-content-sha256``): passed through (UNSIGNED-PAYLOAD), hashed as it
flows and compared at the end (a hex SHA-256), or decoded from aws-chunked framing with
every chunk signature checked (the STREAMING-* modes; trailers kept for the caller, and
checked to be exactly the ones ``x-amz-trailer`` declared when the caller says which).
Any failure raises out of the iteration, which makes the chunker fail the upload, so a
body that does not verify commits nothing. The length the client announced
(``x-amz-decoded-content-length`` or ``Content-Length``) must be exactly what arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Final

from relay.http import BodyTimeout, ClientDisconnected, RequestBody, RequestBodyError
from relay.s3.errors import (
    IncompleteBody,
    InvalidRequest,
    RequestTimeout,
    XAmzContentSHA256Mismatch,
)
from relay.sigv4 import (
    END,
    NEED_DATA,
    UNSIGNED_PAYLOAD,
    AwsChunkedDecoder,
    ChunkData,
    Trailers,
    VerifiedRequest,
)

# Reads from the connection in pieces this large: fewer, larger pieces are cheaper for
# h11, trio and the chunker alike.
READ_BYTES: Final = 1 << 20


class Payload:
    """The object's bytes. With ``defer_sha256`` the signed payload hash is not computed
    here but left to the caller (``signed_sha256`` says what to compare at the end): the
    chunker hashes on a worker thread, so a large upload does not spend the event loop's
    time on SHA-256."""

    def __init__(
        self,
        body: RequestBody,
        auth: VerifiedRequest,
        content_length: int | None,
        *,
        defer_sha256: bool = False,
        declared_trailers: frozenset[str] | None = None,
    ) -> None:
        self._body = body
        self._declared_trailers = declared_trailers
        self._auth = auth
        self._content_length = content_length
        self._defer_sha256 = defer_sha256
        self.trailers: list[tuple[str, str]] = []
        self.received = 0  # object bytes delivered

    @property
    def signed_sha256(self) -> str | None:
        """The hex SHA-256 the body must have (a plain signed payload), else None."""
        payload = self._auth.payload
        if self._auth.is_streaming or payload == UNSIGNED_PAYLOAD:
            return None
        return payload.lower()

    @property
    def size_hint(self) -> int | None:
        if self._auth.is_streaming:
            return self._auth.decoded_content_length
        return self._content_length

    async def _raw(self) -> AsyncIterator[bytes]:
        try:
            while True:
                piece = await self._body.receive_some(READ_BYTES)
                if not piece:
                    return
                yield piece
        except BodyTimeout:
            raise RequestTimeout() from None
        except ClientDisconnected:
            raise IncompleteBody() from None
        except RequestBodyError as exc:
            raise InvalidRequest(str(exc)) from None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._auth.is_streaming:
            async for data in self._decoded():
                yield data
            return
        expected = self.signed_sha256
        hasher = None if expected is None or self._defer_sha256 else hashlib.sha256()
        async for piece in self._raw():
            self.received += len(piece)
            if hasher is not None:
                hasher.update(piece)
            yield piece
        if self._content_length is not None and self.received != self._content_length:
            raise IncompleteBody()
        if hasher is not None and hasher.hexdigest() != expected:
            raise XAmzContentSHA256Mismatch()

    async def _decoded(self) -> AsyncIterator[bytes]:
        decoder = AwsChunkedDecoder(self._auth, declared_trailers=self._declared_trailers)
        raw = self._raw()
        while True:
            event = decoder.next_event()
            if event is NEED_DATA:
                piece = await anext(raw, b"")
                decoder.feed(piece)
            elif isinstance(event, ChunkData):
                self.received += len(event.data)
                yield event.data
            elif isinstance(event, Trailers):
                self.trailers = event.headers
            elif event is END:
                return
