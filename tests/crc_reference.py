"""Slow, independent CRCs from their published parameters, to check relay's fast ones."""

from __future__ import annotations

from functools import cache

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
