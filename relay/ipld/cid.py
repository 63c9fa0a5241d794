"""Content identifiers (CIDv0 and CIDv1), kept as their binary form.

A ``CID`` wraps the binary CID bytes and parses lazily: constructing one from bytes that
came out of a verified block costs one slot assignment, which matters because an MST node
carries a CID per entry and a listing decodes thousands of them.
"""

from __future__ import annotations

import builtins
from typing import Final

from relay.ipld import multihash
from relay.ipld.base import MultibaseError, b32encode_lower, b58decode, b58encode, multibase_decode
from relay.ipld.varint import decode_varint, encode_varint

RAW: Final = 0x55
DAG_PB: Final = 0x70
DAG_CBOR: Final = 0x71
CAR: Final = 0x0202

_V1_RAW_SHA256 = bytes((1, RAW, multihash.SHA2_256, 32))
_V1_CBOR_SHA256 = bytes((1, DAG_CBOR, multihash.SHA2_256, 32))
_V1_PB_SHA256 = bytes((1, DAG_PB, multihash.SHA2_256, 32))


class CIDError(ValueError):
    """Bytes or text that are not a valid CID."""


class CID:
    """An immutable CID. Equality and hashing use the binary form."""

    __slots__ = ("_bytes",)
    _bytes: bytes

    def __init__(self, binary: bytes) -> None:
        object.__setattr__(self, "_bytes", binary)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, binary: bytes) -> CID:
        """Parse and validate a binary CID."""
        cid = cls(bytes(binary))
        cid._parse()
        return cid

    @classmethod
    def decode(cls, value: str | bytes | CID) -> CID:
        """Parse a CID from its string form (CIDv0 ``Qm…`` or multibase CIDv1) or bytes."""
        if isinstance(value, CID):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return cls.from_bytes(bytes(value))
        if len(value) == 46 and value.startswith("Qm"):
            try:
                return cls.from_bytes(b58decode(value))
            except MultibaseError as exc:
                raise CIDError(str(exc)) from exc
        try:
            binary = multibase_decode(value)
        except MultibaseError as exc:
            raise CIDError(str(exc)) from exc
        if not binary or binary[0] != 1:
            raise CIDError("a multibase CID must be CIDv1")
        return cls.from_bytes(binary)

    @classmethod
    def v1(cls, codec: int, mh: bytes) -> CID:
        return cls(b"\x01" + encode_varint(codec) + mh)

    @classmethod
    def raw_sha256(cls, digest: bytes) -> CID:
        return cls(_V1_RAW_SHA256 + digest)

    @classmethod
    def dag_cbor_sha256(cls, digest: bytes) -> CID:
        return cls(_V1_CBOR_SHA256 + digest)

    @classmethod
    def dag_pb_sha256(cls, digest: bytes) -> CID:
        return cls(_V1_PB_SHA256 + digest)

    # -- accessors -----------------------------------------------------------------------

    def _parse(self) -> tuple[int, int, bytes]:
        binary = self._bytes
        if len(binary) == 34 and binary[0] == multihash.SHA2_256 and binary[1] == 32:
            return 0, DAG_PB, binary
        try:
            version, offset = decode_varint(binary)
            if version != 1:
                raise CIDError(f"unsupported CID version {version}")
            codec, offset = decode_varint(binary, offset)
            mh = binary[offset:]
            multihash.decode(mh)
        except ValueError as exc:
            raise CIDError(f"invalid CID: {exc}") from exc
        return 1, codec, mh

    @property
    def version(self) -> int:
        return self._parse()[0]

    @property
    def codec(self) -> int:
        return self._parse()[1]

    @property
    def multihash(self) -> bytes:
        binary = self._bytes
        if binary[:2] == b"\x01\x55" or binary[:2] == b"\x01\x71" or binary[:2] == b"\x01\x70":
            return binary[2:]
        return self._parse()[2]

    @property
    def bytes(self) -> bytes:
        return self._bytes

    def to_v1(self) -> CID:
        version, codec, mh = self._parse()
        return self if version == 1 else CID.v1(codec, mh)

    def encode(self) -> str:
        """The canonical string: base58btc for CIDv0, base32 lower for CIDv1."""
        if self._bytes[0] != 1:
            return b58encode(self._bytes)
        return "b" + b32encode_lower(self._bytes)

    # -- value semantics -----------------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CID is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CID) and other._bytes == self._bytes

    def __lt__(self, other: CID) -> bool:
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self.encode()!r})"

    def __reduce__(self) -> tuple[type[CID], tuple[builtins.bytes]]:
        return (CID, (self._bytes,))


def blob_key(mh: bytes) -> str:
    """A blob's name in every store: base58btc multihash with the ``z`` prefix (piri's form)."""
    return "z" + b58encode(mh)


def parse_blob_key(key: str) -> bytes:
    if not key.startswith("z"):
        raise CIDError("a blob key is a base58btc multihash starting with 'z'")
    mh = b58decode(key[1:])
    multihash.decode(mh)
    return mh
