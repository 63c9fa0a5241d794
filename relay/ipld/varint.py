"""Unsigned LEB128 varints, as multiformats and CAR use them (minimal form only)."""

from __future__ import annotations


class VarintError(ValueError):
    """A varint was truncated, too long or not in its minimal form."""


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    if value >= 1 << 63:
        raise VarintError("multiformats varints hold at most 63 bits")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode one varint at ``offset``; return ``(value, offset after it)``.

    At most 9 bytes (63 bits), as the multiformats spec allows; a trailing zero byte
    (non-minimal form) is rejected because two encodings of one CID would break equality.
    """
    value = 0
    shift = 0
    end = len(data)
    position = offset
    while True:
        if position >= end:
            raise VarintError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and position - offset > 1:
                raise VarintError("varint not in minimal form")
            return value, position
        shift += 7
        if shift >= 63:
            raise VarintError("varint longer than 9 bytes")
