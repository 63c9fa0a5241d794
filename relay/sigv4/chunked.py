"""An incremental decoder for aws-chunked bodies, fed bytes like h11 is.

Theory of operation. A streaming upload's body (``x-amz-content-sha256: STREAMING-*``)
is framed as::

    <hex size>[;chunk-signature=<64 hex>]\\r\\n <size bytes> \\r\\n     (repeated)
    0[;chunk-signature=<64 hex>]\\r\\n                                 (the final chunk)
    [<trailer name>:<value>\\r\\n ...]  [x-amz-trailer-signature:<64 hex>\\r\\n]
    \\r\\n

The three modes differ in what is signed. ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` signs
every chunk, the final empty one included, each signature chaining from the previous one
(the first from the seed signature in the ``Authorization`` header)::

    AWS4-HMAC-SHA256-PAYLOAD \\n timestamp \\n scope \\n previous signature \\n
    sha256("") \\n sha256(chunk data)

``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` does the same and then signs the trailers,
chaining from the final chunk's signature::

    AWS4-HMAC-SHA256-TRAILER \\n timestamp \\n scope \\n previous signature \\n
    sha256("name:value\\n" for each trailer, sorted by name)

``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` signs nothing in the body (TLS and the trailing
checksum protect it); its chunk lines carry no signature.

The caller ``feed()``s bytes as they arrive (``feed(b"")`` means the body ended) and pulls
events with ``next_event()``: ``ChunkData``, then one ``Trailers`` (trailer modes only),
then ``END``; ``NEED_DATA`` when it must feed more. The decoder holds at most one chunk
header line (``MAX_LINE_BYTES``) plus the bytes fed and not yet returned.

Data is released as soon as it arrives, in every mode, and a chunk's signature is checked
the moment its last byte has arrived, so a bad chunk raises ``SignatureDoesNotMatch``
before any byte of the next chunk is released. Holding each signed chunk until its
signature checks would cost a whole chunk of memory per upload (1 MiB or more, clients
choose) and gain nothing: relay commits nothing until the body has been read to ``END``,
so the consumer simply treats any exception as "discard everything". Consumers must
therefore not act on data (beyond buffering and hashing it) before ``END``.

Every error is final: after one, discard the decoder (and the body).

The decoder does not check a trailing checksum's value (the caller computes CRC32 and the
rest over the data); it returns the trailers, verified when the mode signs them. Given the
names ``x-amz-trailer`` declared, it also checks that exactly those trailers arrived: a
declared trailer missing from a complete trailer section, one that was not declared, or
any trailer in a mode that carries none is ``MalformedTrailerError``, as S3 answers (a body
that ends before its trailer section is complete is ``IncompleteBody``). When
``x-amz-decoded-content-length`` was sent, the total of chunk sizes must equal it.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal

from relay.sigv4 import canonical as c
from relay.sigv4.errors import (
    IncompleteBody,
    MalformedChunkedBody,
    MalformedTrailerError,
    SignatureDoesNotMatch,
)
from relay.sigv4.verify import VerifiedRequest

# A chunk line is "<16 hex digits at most>;chunk-signature=<64 hex>" (~100 bytes); a
# trailer line is a checksum header. 4 KiB bounds the buffer against a peer that never
# sends CRLF while leaving room for any real client.
MAX_LINE_BYTES: Final = 4096
# Trailers are a handful of checksum headers; more than this is abuse.
MAX_TRAILERS: Final = 16

_SIZE: Final = re.compile(rb"[0-9a-fA-F]{1,16}")
_CHUNK_SIGNATURE: Final = re.compile(rb"chunk-signature=([0-9a-fA-F]{64})")
_TRAILER_SIGNATURE_NAME: Final = "x-amz-trailer-signature"


@dataclass(frozen=True, slots=True)
class ChunkData:
    data: bytes


@dataclass(frozen=True, slots=True)
class Trailers:
    headers: list[tuple[str, str]]  # lowercase names, trimmed values; no signature line


class Signal(enum.Enum):
    NEED_DATA = "NEED_DATA"
    END = "END"


NEED_DATA: Final = Signal.NEED_DATA
END: Final = Signal.END

Event = ChunkData | Trailers | Literal[Signal.NEED_DATA, Signal.END]


class _State(enum.Enum):
    CHUNK_LINE = enum.auto()
    DATA = enum.auto()
    DATA_CRLF = enum.auto()
    TRAILERS = enum.auto()
    TRAILERS_DONE = enum.auto()  # Trailers event returned; END comes next
    DONE = enum.auto()


class AwsChunkedDecoder:
    """Decode (and, in signed modes, verify) one aws-chunked body. See the module docstring."""

    def __init__(
        self, request: VerifiedRequest, *, declared_trailers: frozenset[str] | None = None
    ) -> None:
        """``declared_trailers``: the lowercase names ``x-amz-trailer`` listed, which must be
        exactly the trailers that arrive; None leaves the trailers unchecked."""
        if request.payload not in c.STREAMING_MODES:
            raise ValueError(f"payload mode {request.payload!r} is not aws-chunked")
        self._mode = request.payload
        self._signed = request.payload in c.SIGNED_STREAMING_MODES
        self._has_trailers = request.payload != c.STREAMING_SIGNED_PAYLOAD
        self._signing_key = request.signing_key
        self._scope = request.scope
        self._timestamp = request.timestamp
        self._previous_signature = request.seed_signature
        self._expected_length = request.decoded_content_length
        self._buffer = bytearray()
        self._eof = False
        self._state = _State.CHUNK_LINE
        self._remaining = 0  # bytes of the current chunk's data still to come
        self._is_final_chunk = False
        self._chunk_hash = hashlib.sha256()
        self._chunk_signature = ""
        self._decoded_length = 0
        self._trailers: list[tuple[str, str]] = []
        self._trailer_signature: str | None = None
        self._declared_trailers = declared_trailers

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the body ended."""
        if self._eof and data:
            raise RuntimeError("feed() after the end of the body")
        if not data:
            self._eof = True
        else:
            self._buffer += data

    def next_event(self) -> Event:
        while True:
            event = self._step()
            if event is not None:
                return event

    # One state transition; None means "go round again".
    def _step(self) -> Event | None:
        state = self._state
        if state is _State.CHUNK_LINE:
            line = self._take_line()
            if line is None:
                return self._need_data("before the final chunk")
            self._start_chunk(line)
            return None
        if state is _State.DATA:
            if not self._buffer:
                return self._need_data("in the middle of a chunk")
            piece = bytes(self._buffer[: self._remaining])
            del self._buffer[: len(piece)]
            self._remaining -= len(piece)
            self._chunk_hash.update(piece)
            if self._remaining == 0:
                self._finish_chunk_data()
            return ChunkData(piece)
        if state is _State.DATA_CRLF:
            if len(self._buffer) < 2:
                return self._need_data("after a chunk's data")
            if self._buffer[:2] != b"\r\n":
                raise MalformedChunkedBody("a chunk's data is not followed by CRLF")
            del self._buffer[:2]
            self._state = _State.CHUNK_LINE
            return None
        if state is _State.TRAILERS:
            line = self._take_line()
            if line is None:
                return self._need_data("in the trailers")
            if line:
                self._add_trailer(line)
                return None
            return self._finish_trailers()
        if state is _State.TRAILERS_DONE:
            self._state = _State.DONE
            return None
        if self._buffer:
            raise MalformedChunkedBody("bytes follow the end of the aws-chunked body")
        return END

    def _need_data(self, where: str) -> Literal[Signal.NEED_DATA]:
        if self._eof:
            raise IncompleteBody(f"the body ended {where}")
        return NEED_DATA

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n", 0, MAX_LINE_BYTES + 2)
        if end < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise MalformedChunkedBody("an aws-chunked line is too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        if not _SIZE.fullmatch(size_text):
            raise MalformedChunkedBody("a chunk size is not a hexadecimal number")
        size = int(size_text, 16)
        if self._signed:
            match = _CHUNK_SIGNATURE.fullmatch(extension)
            if match is None:
                raise SignatureDoesNotMatch("a chunk has no chunk-signature")
            self._chunk_signature = match.group(1).decode("ascii")
        self._decoded_length += size
        if self._expected_length is not None and self._decoded_length > self._expected_length:
            raise IncompleteBody("the chunks hold more data than x-amz-decoded-content-length")
        self._remaining = size
        self._is_final_chunk = size == 0
        self._chunk_hash = hashlib.sha256()
        if size == 0:
            self._finish_chunk_data()
        else:
            self._state = _State.DATA

    def _finish_chunk_data(self) -> None:
        if self._signed:
            to_sign = c.chunk_string_to_sign(
                self._timestamp,
                self._scope,
                self._previous_signature,
                self._chunk_hash.hexdigest(),
            )
            if not c.signatures_equal(
                c.signature(self._signing_key, to_sign), self._chunk_signature
            ):
                raise SignatureDoesNotMatch("a chunk's signature does not match its data")
            self._previous_signature = self._chunk_signature.lower()
        if not self._is_final_chunk:
            self._state = _State.DATA_CRLF
            return
        if self._expected_length is not None and self._decoded_length != self._expected_length:
            raise IncompleteBody("the chunks hold less data than x-amz-decoded-content-length")
        self._state = _State.TRAILERS

    def _add_trailer(self, line: bytes) -> None:
        if not self._has_trailers:
            raise MalformedTrailerError(f"{self._mode} bodies carry no trailers")
        name_bytes, sep, value_bytes = line.partition(b":")
        name = c.as_text(name_bytes).strip().lower()
        if not sep or not name or any(ch.isspace() for ch in name):
            raise MalformedChunkedBody("a trailer line is not name:value")
        value = c.trim_header_value(c.as_text(value_bytes))
        if self._trailer_signature is not None:
            raise MalformedChunkedBody("a trailer follows x-amz-trailer-signature")
        if name == _TRAILER_SIGNATURE_NAME:
            self._trailer_signature = value
            return
        if len(self._trailers) >= MAX_TRAILERS:
            raise MalformedChunkedBody("too many trailers")
        declared = self._declared_trailers
        if declared is not None and name not in declared:
            raise MalformedTrailerError(f"trailer {name!r} was not declared in x-amz-trailer")
        if any(name == seen for seen, _ in self._trailers):
            raise MalformedTrailerError(f"trailer {name!r} arrived twice")
        self._trailers.append((name, value))

    def _finish_trailers(self) -> Event | None:
        if self._signed and self._has_trailers:
            if self._trailer_signature is None:
                raise SignatureDoesNotMatch("the trailers carry no x-amz-trailer-signature")
            to_sign = c.trailer_string_to_sign(
                self._timestamp, self._scope, self._previous_signature, self._trailers
            )
            if not c.signatures_equal(
                c.signature(self._signing_key, to_sign), self._trailer_signature
            ):
                raise SignatureDoesNotMatch("the trailer signature does not match the trailers")
        elif self._trailer_signature is not None:
            raise MalformedChunkedBody(f"{self._mode} bodies carry no trailer signature")
        if self._declared_trailers is not None:
            missing = self._declared_trailers - {name for name, _ in self._trailers}
            if missing:
                raise MalformedTrailerError(
                    f"declared trailer {sorted(missing)[0]!r} did not arrive"
                )
        if not self._has_trailers:
            self._state = _State.DONE
            return None
        self._state = _State.TRAILERS_DONE
        return Trailers(list(self._trailers))
