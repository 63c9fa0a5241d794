"""The multibase encodings relay reads and writes: base32 lower (``b``), base58btc (``z``),
base16 (``f``). Hand-written because they sit on hot paths (blob keys, CID strings)."""

from __future__ import annotations

import base64
import binascii

_B58_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


class MultibaseError(ValueError):
    """A string that is not in a multibase relay understands."""


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    number = int.from_bytes(data, "big")
    out = bytearray()
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    out.extend(b"1" * zeros)
    out.reverse()
    return out.decode("ascii")


def b58decode(text: str) -> bytes:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise MultibaseError("invalid base58btc character") from None
    number = 0
    try:
        for c in raw:
            number = number * 58 + _B58_INDEX[c]
    except KeyError as exc:
        raise MultibaseError("invalid base58btc character") from exc
    zeros = len(raw) - len(raw.lstrip(b"1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def b32encode_lower(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode_lower(text: str) -> bytes:
    if text != text.lower() or not text.isascii():
        raise MultibaseError("base32 multibase 'b' is lowercase ASCII")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded)
    except binascii.Error as exc:
        raise MultibaseError("invalid base32") from exc


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string (prefix ``b``, ``z`` or ``f``)."""
    if not text:
        raise MultibaseError("empty multibase string")
    prefix, body = text[0], text[1:]
    if prefix == "b":
        return b32decode_lower(body)
    if prefix == "z":
        return b58decode(body)
    if prefix == "f":
        try:
            if not body.isascii():
                raise ValueError("non-ASCII")
            return bytes.fromhex(body)
        except ValueError as exc:
            raise MultibaseError("invalid base16") from exc
    raise MultibaseError(f"unsupported multibase prefix {prefix!r}")
