"""Multihashes: ``varint(code) || varint(length) || digest``, kept as plain ``bytes``.

A multihash is the identity of a blob in every store; it is carried as the raw bytes
everywhere (hashable, cheap to compare, ready to embed in a CID) and only parsed when a
caller needs the code or the digest.
"""

from __future__ import annotations

import hashlib

import blake3

from relay.ipld.varint import decode_varint, encode_varint

IDENTITY = 0x00
SHA2_256 = 0x12
BLAKE3 = 0x1E

_SHA2_256_PREFIX = bytes((SHA2_256, 32))
_BLAKE3_PREFIX = bytes((BLAKE3, 32))


class MultihashError(ValueError):
    """Bytes that are not a multihash relay understands."""


def sha2_256(data: bytes | bytearray | memoryview) -> bytes:
    """The sha2-256 multihash of ``data``."""
    return _SHA2_256_PREFIX + hashlib.sha256(data).digest()


def wrap_sha2_256(digest: bytes) -> bytes:
    """The sha2-256 multihash for an already computed 32-byte digest."""
    if len(digest) != 32:
        raise MultihashError("a sha2-256 digest is 32 bytes")
    return _SHA2_256_PREFIX + digest


def wrap_blake3(digest: bytes) -> bytes:
    if len(digest) != 32:
        raise MultihashError("relay uses 32-byte BLAKE3 digests")
    return _BLAKE3_PREFIX + digest


def encode(code: int, digest: bytes) -> bytes:
    return encode_varint(code) + encode_varint(len(digest)) + digest


def decode(multihash: bytes) -> tuple[int, bytes]:
    """Split a multihash into ``(code, digest)``, checking the declared length."""
    try:
        code, offset = decode_varint(multihash)
        length, offset = decode_varint(multihash, offset)
    except ValueError as exc:
        raise MultihashError(str(exc)) from exc
    digest = multihash[offset:]
    if len(digest) != length:
        raise MultihashError(f"multihash declares {length} digest bytes, has {len(digest)}")
    return code, digest


def digest_of(code: int, data: bytes | bytearray | memoryview) -> bytes:
    """Compute the digest that a multihash with ``code`` should hold for ``data``."""
    if code == SHA2_256:
        return hashlib.sha256(data).digest()
    if code == BLAKE3:
        return blake3.blake3(data).digest()
    if code == IDENTITY:
        return bytes(data)
    raise MultihashError(f"unsupported multihash code 0x{code:x}")


def matches(multihash: bytes, data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` hashes to ``multihash`` (the integrity check on every read)."""
    if multihash[:2] == _SHA2_256_PREFIX:
        return multihash[2:] == hashlib.sha256(data).digest()
    code, digest = decode(multihash)
    return digest == digest_of(code, data)
