"""Independent implementations of S3's checksums, to check relay's fast ones: CRC64NVME
from its published parameters (slow, table-driven), and the xxHashes from awscrt's
implementation (relay's come from the ``xxhash`` binding)."""

from __future__ import annotations

from functools import cache

from awscrt.checksums import XXHash

# CRC-64/NVME (reflected): poly 0xAD93D23594C93659, init and xorout all ones;
# check("123456789") = 0xAE8B14860A799888.
_CRC64NVME_REFLECTED_POLY = 0x9A6C9329AC4BC9B5
_MASK64 = (1 << 64) - 1


@cache
def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC64NVME_REFLECTED_POLY if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


def crc64nvme(data: bytes) -> int:
    table = _table()
    crc = _MASK64
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


assert crc64nvme(b"123456789") == 0xAE8B14860A799888


def xxhash(data: bytes, algorithm: str) -> bytes:
    """S3's XXHASH64, XXHASH3 (64-bit XXH3) or XXHASH128 (XXH3-128), canonical bytes."""
    new = {
        "xxhash64": XXHash.new_xxhash64,
        "xxhash3": XXHash.new_xxhash3_64,
        "xxhash128": XXHash.new_xxhash3_128,
    }[algorithm]
    hasher = new()
    hasher.update(bytes(data))
    digest: bytes = hasher.finalize()
    return digest
