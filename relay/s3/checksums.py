"""A request's ``x-amz-checksum-*`` headers: which checksum its body carries, and S3's rules.

A PutObject or UploadPart body carries at most one checksum, either as a header whose
value is known before the body (``x-amz-checksum-crc32: <base64>``) or as an aws-chunked
trailer the header ``x-amz-trailer`` announces. ``body_checksum`` reads the headers and
refuses what S3 refuses before any byte of the body is read: two checksums
("Multiple checksum Types are not allowed"), a trailer that is no checksum, a header
value that is not base64 of the algorithm's length, an ``x-amz-sdk-checksum-algorithm``
that names another algorithm. ``verify`` runs after the body, before anything is
committed: a trailer's value is decoded then, and a mismatch is ``BadDigest``.

A multipart upload fixes its algorithm and checksum type at CreateMultipartUpload
(``upload_checksum``); every part must then carry that algorithm (``check_part``), and
CompleteMultipartUpload's part list must repeat each part's checksum when the type is
COMPOSITE. The error codes and messages are S3's own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from relay.chunker import Checksum, ChecksumType, ChunkedBody, allowed_types, default_type
from relay.s3.errors import (
    BadDigest,
    InvalidArgument,
    InvalidRequest,
    MalformedTrailerError,
    S3Error,
)

TRAILER_HEADER: Final = "x-amz-trailer"
SDK_ALGORITHM_HEADER: Final = "x-amz-sdk-checksum-algorithm"
ALGORITHM_HEADER: Final = "x-amz-checksum-algorithm"
TYPE_HEADER: Final = "x-amz-checksum-type"
BY_HEADER: Final = {kind.header: kind for kind in Checksum}
BY_XML_NAME: Final = {kind.xml_name: kind for kind in Checksum}


@dataclass(frozen=True, slots=True)
class BodyChecksum:
    """The checksum a request body comes with, if any."""

    kind: Checksum | None = None
    expected: bytes | None = None  # from the header; None for a trailer (or nothing to check)
    trailer: bool = False

    @property
    def declared_trailers(self) -> frozenset[str]:
        return frozenset({self.kind.header}) if self.trailer and self.kind else frozenset()

    @property
    def kinds(self) -> frozenset[Checksum]:
        return frozenset() if self.kind is None else frozenset({self.kind})


def _invalid_value(name: str, *, trailing: bool = False) -> S3Error:
    where = "trailing header" if trailing else "header"
    return InvalidRequest(f"Value for {name} {where} is invalid.")


def decode_digest(kind: Checksum, value: str) -> bytes | None:
    """A base64 checksum value as bytes; None unless it is the canonical base64 of a digest
    of the algorithm's length (S3 refuses ``y/Q5Jh==`` for ``y/Q5Jg==``: the padding bits
    must be zero)."""
    text = value.strip()
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(digest) != kind.digest_size or encode_digest(digest) != text:
        return None
    return digest


def encode_digest(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def body_checksum(headers: Mapping[str, str]) -> BodyChecksum:
    """The checksum a PutObject or UploadPart body carries; see the module docstring."""
    kinds = [kind for kind in Checksum if kind.header in headers]
    trailers = [name.strip().lower() for name in headers.get(TRAILER_HEADER, "").split(",")]
    trailers = [name for name in trailers if name]
    for name in trailers:
        if name not in BY_HEADER:
            raise InvalidRequest("The value specified in the x-amz-trailer header is not supported")
    kinds += [BY_HEADER[name] for name in trailers]
    if len(kinds) > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    sdk_algorithm = headers.get(SDK_ALGORITHM_HEADER)
    if sdk_algorithm is not None:
        try:
            named = Checksum(sdk_algorithm.strip().lower())
        except ValueError:
            raise _invalid_value(SDK_ALGORITHM_HEADER) from None
        if kinds and kinds[0] is not named:
            raise _invalid_value(SDK_ALGORITHM_HEADER)
        if not kinds:
            # Named without a value: relay computes and keeps it (S3 would ask for one).
            return BodyChecksum(named)
    if not kinds:
        return BodyChecksum()
    kind = kinds[0]
    if trailers:
        return BodyChecksum(kind, trailer=True)
    expected = decode_digest(kind, headers[kind.header])
    if expected is None:
        raise _invalid_value(kind.header)
    return BodyChecksum(kind, expected)


def verify(check: BodyChecksum, body: ChunkedBody, trailers: Iterable[tuple[str, str]]) -> None:
    """Compare the body's checksum with the one the client sent (header or trailer)."""
    kind = check.kind
    if kind is None:
        return
    expected = check.expected
    if check.trailer:
        value = dict(trailers).get(kind.header)
        if value is None:  # declared, but the body was not aws-chunked with trailers
            raise MalformedTrailerError()
        expected = decode_digest(kind, value)
        if expected is None:
            raise _invalid_value(kind.header, trailing=True)
    if expected is not None and body.checksums.get(kind) != expected:
        raise BadDigest(
            f"The {kind.value.upper()} you specified did not match the calculated checksum."
        )


def response_headers(values: Mapping[str, str], checksum_type: str) -> list[tuple[str, str]]:
    """``x-amz-checksum-<name>`` for each stored checksum, and ``x-amz-checksum-type``."""
    if not values:
        return []
    headers = [(f"x-amz-checksum-{name}", value) for name, value in values.items()]
    headers.append((TYPE_HEADER, checksum_type))
    return headers


def upload_checksum(headers: Mapping[str, str]) -> tuple[Checksum | None, ChecksumType | None]:
    """CreateMultipartUpload's algorithm and checksum type, checked as S3 checks them."""
    algorithm = headers.get(ALGORITHM_HEADER)
    type_name = headers.get(TYPE_HEADER)
    if algorithm is None:
        if type_name is not None:
            raise InvalidRequest(
                "The x-amz-checksum-type header can only be used with the"
                " x-amz-checksum-algorithm header."
            )
        return None, None
    try:
        kind = Checksum(algorithm.strip().lower())
    except ValueError:
        if "," in algorithm:
            raise InvalidRequest(
                "Invalid types are specified in x-amz-checksum-algorithm header."
            ) from None
        names = ", ".join(option.value.upper() for option in Checksum)
        raise InvalidRequest(
            "Checksum algorithm provided is unsupported. Please try again with any of the"
            f" valid types: [{names}]"
        ) from None
    if type_name is None:
        return kind, default_type(kind)
    try:
        checksum_type = ChecksumType(type_name.strip())
    except ValueError:
        raise _invalid_value(TYPE_HEADER) from None
    if checksum_type not in allowed_types(kind):
        raise InvalidRequest(
            f"The {checksum_type.value} checksum type cannot be used with the {kind.value}"
            " checksum algorithm."
        )
    return kind, checksum_type


def check_part(check: BodyChecksum, upload_algorithm: Checksum | None) -> None:
    """A part of an upload created with an algorithm must carry that algorithm's checksum."""
    if upload_algorithm is None or check.kind is upload_algorithm:
        return
    actual = "null" if check.kind is None else check.kind.value
    raise InvalidRequest(
        "Checksum Type mismatch occurred, expected checksum Type:"
        f" {upload_algorithm.value}, actual checksum Type: {actual}"
    )


def completed_part_checksums(given: Mapping[str, str]) -> dict[str, bytes]:
    """A CompleteMultipartUpload ``<Part>``'s checksum elements, decoded (by algorithm)."""
    digests: dict[str, bytes] = {}
    for xml_name, value in given.items():
        kind = BY_XML_NAME[xml_name]
        digest = decode_digest(kind, value)
        if digest is None or digests:
            raise InvalidArgument(
                "Invalid Base64 or multiple checksums present in request",
                ArgumentName="Checksum",
                ArgumentValue=f"{kind.value.upper()}:{value};",
            )
        digests[kind.value] = digest
    return digests


def missing_part_checksum(kind: Checksum, part_number: int) -> S3Error:
    return InvalidRequest(
        f"The upload was created using a {kind.value} checksum. The complete request must"
        f" include the checksum for each part. It was missing for part {part_number} in the"
        " request."
    )


def complete_expectation(
    headers: Mapping[str, str], kind: Checksum | None, checksum_type: ChecksumType | None
) -> tuple[bytes, int | None] | None:
    """The whole-object checksum CompleteMultipartUpload's headers expect: (digest, part
    count when given as ``-N``), or None. Refuses a value of the wrong form and a checksum
    type other than the upload's."""
    given_type = headers.get(TYPE_HEADER)
    if given_type is not None and checksum_type is not None:
        if given_type.strip() != checksum_type.value:
            raise InvalidRequest(
                f"The upload was created using the {checksum_type.value} checksum mode. The"
                " complete request must use the same checksum mode."
            )
    if kind is None or kind.header not in headers:
        return None
    value = headers[kind.header].strip()
    digest_text, dash, count_text = value.partition("-")
    count: int | None = None
    if dash:
        if checksum_type is not ChecksumType.COMPOSITE or not count_text.isdigit():
            raise _invalid_value(kind.header)
        count = int(count_text)
    digest = decode_digest(kind, digest_text)
    if digest is None:
        raise _invalid_value(kind.header)
    return digest, count


def complete_mismatch(kind: Checksum) -> S3Error:
    return BadDigest(f"The {kind.value} you specified did not match the calculated checksum.")
