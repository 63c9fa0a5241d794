"""ed25519 principals: signers, verifiers, did:key, and the varsig signature envelope.

A did:key is ``did:key:z`` + base58btc(multicodec ed25519-pub ``0xed 0x01`` + 32-byte
public key). Inside a UCAN block a DID is carried as bytes: for did:key the multicodec
form above, for any other method varint(0x0d1d) + the DID text without ``did:``.

Signatures travel as varsig: ``0xed 0xa1 0x03`` (varint 0xd0ed, EdDSA) ``0x40`` (64 bytes)
followed by the raw 64-byte ed25519 signature.

ucanto formats a signer as multibase ``M`` (padded base64) of ``0x80 0x26`` (varint
0x1300, ed25519-priv) + 32-byte seed + ``0xed 0x01`` + public key; ``Signer.parse`` and
``Signer.format`` read and write that, ``from_pem`` / ``to_pem`` the PKCS#8 PEM piri uses.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from relay.ipld.base import MultibaseError, b58decode, b58encode
from relay.ipld.varint import VarintError, decode_varint, encode_varint
from relay.ucan.dagjson import multibase64_decode, multibase64_encode
from relay.ucan.errors import MalformedUcan

ED25519_PUB_PREFIX: Final = b"\xed\x01"  # multicodec 0xed, ed25519-pub
ED25519_PRIV_PREFIX: Final = b"\x80\x26"  # multicodec 0x1300, ed25519-priv
VARSIG_ED25519_PREFIX: Final = b"\xed\xa1\x03\x40"  # varint(0xd0ed) EdDSA, varint(64)
DID_CORE_CODE: Final = 0x0D1D  # multicodec "did": a non-key DID carried as its text
_DID_CORE_PREFIX: Final = encode_varint(DID_CORE_CODE)
_DID_KEY: Final = "did:key:z"


class Verifier:
    """An ed25519 public key, named by its did:key."""

    __slots__ = ("_key", "public_key")

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise MalformedUcan("an ed25519 public key is 32 bytes")
        self.public_key = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    @property
    def did(self) -> str:
        return _DID_KEY + b58encode(ED25519_PUB_PREFIX + self.public_key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether the raw 64-byte ``signature`` is this key's signature of ``data``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def verify_varsig(self, data: bytes, varsig: bytes) -> bool:
        """Whether the varsig envelope holds this key's ed25519 signature of ``data``."""
        return (
            varsig[:4] == VARSIG_ED25519_PREFIX
            and len(varsig) == 68
            and (self.verify(data, varsig[4:]))
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and other.public_key == self.public_key

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"Verifier({self.did!r})"


class Signer:
    """An ed25519 private key. Never printed: ``repr`` shows only the DID."""

    __slots__ = ("_key", "verifier")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = Verifier(
            private_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        """The signer for a 32-byte ed25519 seed (the RFC 8032 private key)."""
        if len(seed) != 32:
            raise MalformedUcan("an ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes | str) -> Signer:
        """Load a PKCS#8 PEM ed25519 private key (``piri identity generate`` writes one)."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise MalformedUcan(f"not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise MalformedUcan("the PEM key is not ed25519")
        return cls(key)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Read ucanto's formatted signer: ``M`` + padded base64 of the key archive."""
        archive = multibase64_decode(text.strip())
        if len(archive) != 68 or archive[:2] != ED25519_PRIV_PREFIX:
            raise MalformedUcan("not a ucanto ed25519 signer (0x1300 + seed + public key)")
        signer = cls.from_seed(archive[2:34])
        if archive[34:] != ED25519_PUB_PREFIX + signer.verifier.public_key:
            raise MalformedUcan("the signer's public key does not match its seed")
        return signer

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def archive(self) -> bytes:
        """ucanto's binary signer form: ``0x80 0x26`` + seed + ``0xed 0x01`` + public key."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return ED25519_PRIV_PREFIX + seed + ED25519_PUB_PREFIX + self.verifier.public_key

    def format(self) -> str:
        """ucanto's printed signer: ``M`` + padded base64 of ``archive()``."""
        return multibase64_encode(self.archive(), "M")

    @property
    def did(self) -> str:
        return self.verifier.did

    def sign(self, data: bytes) -> bytes:
        """The raw 64-byte ed25519 signature of ``data``."""
        return self._key.sign(data)

    def sign_varsig(self, data: bytes) -> bytes:
        """The signature of ``data`` in its varsig envelope (68 bytes), as UCANs carry it."""
        return VARSIG_ED25519_PREFIX + self._key.sign(data)

    def __repr__(self) -> str:
        return f"Signer({self.did!r})"


def parse_did_key(did: str) -> Verifier:
    """The verifier named by an ed25519 did:key; anything else is ``MalformedUcan``."""
    if not did.startswith(_DID_KEY):
        raise MalformedUcan(f"not a did:key (base58btc): {did!r}")
    try:
        binary = b58decode(did[len(_DID_KEY) :])
    except MultibaseError as exc:
        raise MalformedUcan(f"bad did:key {did!r}: {exc}") from exc
    if binary[:2] != ED25519_PUB_PREFIX or len(binary) != 34:
        raise MalformedUcan(f"{did!r} is not an ed25519 did:key")
    return Verifier(binary[2:])


def did_to_bytes(did: str) -> bytes:
    """A DID as a UCAN block carries it (``iss``, ``aud``, ``nb.space``)."""
    if did.startswith(_DID_KEY):
        try:
            binary = b58decode(did[len(_DID_KEY) :])
            decode_varint(binary)
        except (MultibaseError, VarintError) as exc:
            raise MalformedUcan(f"bad did:key {did!r}: {exc}") from exc
        return binary
    if not did.startswith("did:") or len(did) <= 4:
        raise MalformedUcan(f"not a DID: {did!r}")
    return _DID_CORE_PREFIX + did[4:].encode("utf-8")


def did_from_bytes(binary: bytes) -> str:
    """The DID text for the bytes form (the inverse of ``did_to_bytes``)."""
    if binary[: len(_DID_CORE_PREFIX)] == _DID_CORE_PREFIX:
        try:
            return "did:" + binary[len(_DID_CORE_PREFIX) :].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedUcan("a DID's text is not UTF-8") from exc
    try:
        decode_varint(binary)
    except VarintError as exc:
        raise MalformedUcan(f"DID bytes do not start with a multicodec: {exc}") from exc
    return _DID_KEY + b58encode(binary)
