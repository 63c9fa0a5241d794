"""S3's additional checksums (``x-amz-checksum-*``): the algorithms, and how parts combine.

An upload may carry one checksum of the object's bytes besides Content-MD5: a CRC
(CRC32, CRC32C, CRC64NVME), a hash (SHA1, SHA256, SHA512, MD5) or an xxHash (XXHASH64,
XXHASH3, XXHASH128: S3's 64-bit XXH64 and XXH3 and the 128-bit XXH3, each digest in its
canonical big-endian form). The chunker feeds every requested one chunk by chunk, in C
with the GIL released: the CRCs come from AWS's C runtime (``awscrt``, the library
botocore itself uses), which takes any buffer without a copy and carries the running
value, the hashes from hashlib and the xxHashes from the ``xxhash`` binding.

A multipart object's checksum is of one of two types, chosen at CreateMultipartUpload:

* COMPOSITE: the checksum of the concatenated binary checksums of the parts, shown with a
  ``-N`` suffix (N parts). Any algorithm but CRC64NVME.
* FULL_OBJECT: the checksum of the whole object's bytes, as if it had been sent in one
  PUT. Only a CRC can be one: the CRC of a concatenation follows from the parts' CRCs
  and lengths alone (``combine``), so Complete reads no byte. CRC64NVME is always
  FULL_OBJECT; CRC32 and CRC32C may be either; the hashes and xxHashes only COMPOSITE.

Combining a CRC is O(log n) in the length of the second part (zlib's ``crc32_combine``:
multiply by x^(8·len) in GF(2)), here awscrt's C implementation of it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType
from typing import Final, Protocol

import xxhash


class Checksum(enum.Enum):
    """Whole-body checksums S3 clients may ask for (``x-amz-checksum-*``)."""

    CRC32 = "crc32"
    CRC32C = "crc32c"
    CRC64NVME = "crc64nvme"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"
    MD5 = "md5"
    XXHASH64 = "xxhash64"
    XXHASH3 = "xxhash3"
    XXHASH128 = "xxhash128"

    @property
    def header(self) -> str:
        """The request and response header that carries it: ``x-amz-checksum-crc32``."""
        return f"x-amz-checksum-{self.value}"

    @property
    def xml_name(self) -> str:
        """Its element in S3's XML: ``ChecksumCRC32``."""
        return f"Checksum{self.value.upper()}"

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    @property
    def is_crc(self) -> bool:
        return self in _CRCS


class ChecksumType(enum.Enum):
    """How a multipart object's checksum is made from its parts' (``x-amz-checksum-type``)."""

    COMPOSITE = "COMPOSITE"
    FULL_OBJECT = "FULL_OBJECT"


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


_DIGEST_SIZES: Final = {
    Checksum.CRC32: 4,
    Checksum.CRC32C: 4,
    Checksum.CRC64NVME: 8,
    Checksum.SHA1: 20,
    Checksum.SHA256: 32,
    Checksum.SHA512: 64,
    Checksum.MD5: 16,
    Checksum.XXHASH64: 8,
    Checksum.XXHASH3: 8,
    Checksum.XXHASH128: 16,
}
_OTHER_HASHERS: Final[dict[Checksum, Callable[[], Hasher]]] = {
    Checksum.SHA1: hashlib.sha1,
    Checksum.SHA256: hashlib.sha256,
    Checksum.SHA512: hashlib.sha512,
    Checksum.MD5: hashlib.md5,
    Checksum.XXHASH64: xxhash.xxh64,
    Checksum.XXHASH3: xxhash.xxh3_64,
    Checksum.XXHASH128: xxhash.xxh3_128,
}
_CRCS: Final = frozenset({Checksum.CRC32, Checksum.CRC32C, Checksum.CRC64NVME})


@cache
def _crt() -> ModuleType:
    """awscrt's checksums, loaded on the first CRC asked for: the C runtime holds ~7 MiB,
    which a server whose clients send no CRC (s5cmd, the aws CLI's defaults) never pays."""
    import awscrt.checksums

    module: ModuleType = awscrt.checksums
    return module


def _crc_function(kind: Checksum) -> Callable[[bytes, int], int]:
    extend: Callable[[bytes, int], int] = getattr(_crt(), kind.value)
    return extend


def _crc_combine(kind: Checksum) -> Callable[[int, int, int], int]:
    merge: Callable[[int, int, int], int] = getattr(_crt(), f"combine_{kind.value}")
    return merge


def allowed_types(kind: Checksum) -> frozenset[ChecksumType]:
    """The multipart checksum types S3 allows for ``kind``."""
    if kind is Checksum.CRC64NVME:
        return frozenset({ChecksumType.FULL_OBJECT})
    if kind.is_crc:
        return frozenset(ChecksumType)
    return frozenset({ChecksumType.COMPOSITE})


def default_type(kind: Checksum) -> ChecksumType:
    """The type a multipart upload gets when CreateMultipartUpload names only the algorithm."""
    return ChecksumType.FULL_OBJECT if kind is Checksum.CRC64NVME else ChecksumType.COMPOSITE


class _Crc:
    """A CRC as running state with a hashlib-like face."""

    def __init__(self, kind: Checksum) -> None:
        self._extend = _crc_function(kind)
        self._size = kind.digest_size
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._extend(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


def new_hasher(kind: Checksum) -> Hasher:
    if kind.is_crc:
        return _Crc(kind)
    return _OTHER_HASHERS[kind]()


def checksum_of(kind: Checksum, data: bytes) -> bytes:
    """One checksum over bytes in hand (S3's composite checksums hash part checksums)."""
    hasher = new_hasher(kind)
    hasher.update(data)
    return hasher.digest()


def combine(kind: Checksum, parts: Sequence[tuple[bytes, int]]) -> bytes:
    """The CRC of the concatenation of parts given as (CRC, length): FULL_OBJECT."""
    merge = _crc_combine(kind)
    value = 0
    for index, (digest, length) in enumerate(parts):
        crc = int.from_bytes(digest, "big")
        value = crc if index == 0 else merge(value, crc, length)
    return value.to_bytes(kind.digest_size, "big")


def composite(kind: Checksum, part_digests: Sequence[bytes]) -> bytes:
    """The checksum of the parts' binary checksums, concatenated: COMPOSITE."""
    return checksum_of(kind, b"".join(part_digests))
