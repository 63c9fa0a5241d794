"""Strict request framing: what relay refuses in a head that h11 lets through (RFC 9112).

h11 frames each request, but it is lenient where a lenient server and a strict proxy in
front of it could disagree about where a request ends (request smuggling). Read from h11
0.16's ``_headers.normalize_and_validate``, ``_readers`` and ``_connection._body_framing``:

- ``Content-Length`` together with ``Transfer-Encoding: chunked``: h11 reads the body as
  chunked. RFC 9112 §6.3 lets a server do so only if it then closes the connection; relay
  refuses the request (400) and closes, so a request hidden in the body is never served.
- Repeated ``Content-Length`` headers with the same value, or one header with a list of
  equal values (``5, 5``): h11 folds them into one, so the event no longer shows them.
  RFC 9112 §6.3 allows that recovery; relay refuses (400): no client sends it.
- Obsolete line folding (a header line starting with a space or tab): h11 joins it to the
  previous line. RFC 9112 §5.2 lets a server either reject it or replace it with a space;
  relay rejects (400).
- Any ``HTTP/d.d`` version: h11 accepts all and treats anything but 1.0 as 1.1. relay
  answers 505 to anything but HTTP/1.0 and HTTP/1.1.
- ``Transfer-Encoding`` in an HTTP/1.0 request: h11 reads it as chunked. RFC 9112 §6.1
  calls that framing faulty; relay refuses it (400), as no HTTP/1.0 client sends it.

What h11 already refuses is left to it: conflicting lengths (400), a ``Transfer-Encoding``
other than exactly ``chunked`` such as ``gzip, chunked`` or ``chunked, chunked``, and two
``Transfer-Encoding`` headers (both 501). The two repeated-header checks need the head's
raw bytes, as sent, because h11's event has already normalised them away; the head is
everything up to the first blank line, found the way h11's receive buffer finds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_BLANK_LINE: Final = re.compile(b"\n\r?\n")  # h11's ReceiveBuffer.blank_line_regex
_SUPPORTED_VERSIONS: Final = (b"HTTP/1.1", b"HTTP/1.0")


@dataclass(frozen=True, slots=True)
class FramingRefusal:
    status: int  # 400 or 505; the connection closes after it
    reason: str  # for the log


def raw_head(data: bytes) -> bytes | None:
    """The request head at the start of `data` (through its blank line), None if incomplete."""
    match = _BLANK_LINE.search(data)
    return None if match is None else data[: match.end()]


def check_request_head(head: bytes) -> FramingRefusal | None:
    """Why relay refuses a head that h11 parsed, or None if it is strictly framed.

    `head` is the raw head as `raw_head` returns it, already accepted by h11 (so the
    request line and each header line are well formed).
    """
    lines = [line.removesuffix(b"\r") for line in head.split(b"\n")]
    request_line, header_lines = lines[0], [line for line in lines[1:] if line]
    version = request_line.rpartition(b" ")[2]
    if version not in _SUPPORTED_VERSIONS:
        return FramingRefusal(505, f"unsupported version {version!r}")
    content_lengths = 0
    transfer_encoding = False
    for line in header_lines:
        if line[:1] in (b" ", b"\t"):
            return FramingRefusal(400, "obsolete line folding")
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            content_lengths += 1
            if content_lengths > 1 or b"," in value:
                return FramingRefusal(400, "more than one Content-Length")
        elif name == b"transfer-encoding":
            transfer_encoding = True
    if transfer_encoding and content_lengths:
        return FramingRefusal(400, "both Content-Length and Transfer-Encoding")
    if transfer_encoding and version == b"HTTP/1.0":
        return FramingRefusal(400, "Transfer-Encoding in an HTTP/1.0 request")
    return None
