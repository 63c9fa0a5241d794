"""UCAN 0.9.1 tokens as ucanto writes them: one dag-cbor block per token.

Theory of operation. A UCAN is a map ``{v, iss, aud, att, exp, prf, s}`` plus ``fct``,
``nnc`` and ``nbf`` only when set (non-empty, non-zero), encoded as DAG-CBOR and named by
a CIDv1 (dag-cbor, sha2-256). Invocations and delegations have the same shape; ucanto
invokes by delegating to the service.

The signature ``s`` does not cover the CBOR. It covers the JWT signing input
``base64url(header) "." base64url(payload)`` (unpadded), where the header is the DAG-JSON
of ``{alg, typ: "JWT", ucv: v}`` and the payload the DAG-JSON of ``{iss, aud, att, exp,
prf}`` (+ ``fct``/``nnc``/``nbf`` when set) with ``iss``/``aud`` as DID strings and
``prf`` as CID strings; ``v`` lives only in the header. DAG-JSON sorts keys
lexicographically, DAG-CBOR length-first, so one value has two key orders: encode each
with its own codec, never reuse one's bytes for the other.

Verifying a received token re-derives the signing input from the decoded block, which is
exact because both codecs are canonical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from relay.ipld import dagcbor
from relay.ipld.block import Block, cbor_block
from relay.ipld.cid import CID
from relay.ucan import dagjson
from relay.ucan.errors import BadSignature, MalformedUcan
from relay.ucan.keys import (
    ED25519_PUB_PREFIX,
    Signer,
    did_from_bytes,
    did_to_bytes,
    parse_did_key,
)

UCAN_VERSION: Final = "0.9.1"


@dataclass(frozen=True, slots=True)
class Capability:
    """One entry of ``att``: ``with`` (a resource URI, usually a DID), ``can`` (the
    ability), ``nb`` (its caveats; ``None`` leaves the key out, ``{}`` writes it)."""

    with_: str
    can: str
    nb: Mapping[str, Any] | None = None

    def to_ipld(self) -> dict[str, Any]:
        value: dict[str, Any] = {"with": self.with_, "can": self.can}
        if self.nb is not None:
            value["nb"] = dict(self.nb)
        return value

    @classmethod
    def from_ipld(cls, value: Any) -> Capability:
        if not isinstance(value, dict):
            raise MalformedUcan("a capability is a map")
        with_, can, nb = value.get("with"), value.get("can"), value.get("nb")
        if not isinstance(with_, str) or not isinstance(can, str):
            raise MalformedUcan("a capability has string 'with' and 'can'")
        if nb is not None and not isinstance(nb, dict):
            raise MalformedUcan("a capability's 'nb' is a map")
        return cls(with_, can, nb)


@dataclass(frozen=True, slots=True)
class Ucan:
    """A decoded (or freshly issued) UCAN block. ``signature`` is the varsig ``s``."""

    cid: CID
    data: bytes
    version: str
    issuer: str
    audience: str
    capabilities: tuple[Capability, ...]
    expiration: int | None
    proofs: tuple[CID, ...]
    facts: tuple[dict[str, Any], ...]
    nonce: str | None
    not_before: int | None
    signature: bytes

    @property
    def block(self) -> Block:
        return Block(self.cid, self.data)

    def signing_input(self) -> bytes:
        return signing_input(
            self.issuer,
            self.audience,
            self.capabilities,
            expiration=self.expiration,
            proofs=self.proofs,
            facts=self.facts,
            nonce=self.nonce,
            not_before=self.not_before,
            version=self.version,
        )

    def verify_signature(self) -> None:
        """Raise ``BadSignature`` unless ``s`` is the issuer's signature (did:key only)."""
        verifier = parse_did_key(self.issuer)
        if not verifier.verify_varsig(self.signing_input(), self.signature):
            raise BadSignature(f"UCAN {self.cid} is not signed by its issuer {self.issuer}")

    def is_expired(self, now: int) -> bool:
        """Whether the token is past its ``exp`` at ``now`` (seconds since the epoch)."""
        return self.expiration is not None and now >= self.expiration


def _algorithm(issuer: str) -> str:
    if did_to_bytes(issuer)[:2] == ED25519_PUB_PREFIX:
        return "EdDSA"
    raise MalformedUcan(f"only ed25519 issuers are supported, not {issuer!r}")


def signing_input(
    issuer: str,
    audience: str,
    capabilities: Sequence[Capability],
    *,
    expiration: int | None,
    proofs: Sequence[CID] = (),
    facts: Sequence[Mapping[str, Any]] = (),
    nonce: str | None = None,
    not_before: int | None = None,
    version: str = UCAN_VERSION,
) -> bytes:
    """The ASCII bytes a UCAN's signature covers: ``base64url(header).base64url(payload)``."""
    header = dagjson.encode({"alg": _algorithm(issuer), "typ": "JWT", "ucv": version})
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "att": [capability.to_ipld() for capability in capabilities],
        "exp": expiration,
        "prf": [str(proof) for proof in proofs],
    }
    if facts:
        payload["fct"] = [dict(fact) for fact in facts]
    if nonce:
        payload["nnc"] = nonce
    if not_before:
        payload["nbf"] = not_before
    encoded = dagjson.b64url_nopad(header) + "." + dagjson.b64url_nopad(dagjson.encode(payload))
    return encoded.encode("ascii")


def issue(
    issuer: Signer,
    audience: str,
    capabilities: Sequence[Capability],
    *,
    expiration: int | None,
    proofs: Sequence[CID] = (),
    facts: Sequence[Mapping[str, Any]] = (),
    nonce: str | None = None,
    not_before: int | None = None,
) -> Ucan:
    """Sign a UCAN (a delegation, or an invocation: ucanto does not tell them apart).

    ``expiration`` is required (``None`` means never): the caller owns the clock.
    """
    if not capabilities:
        raise ValueError("a UCAN grants at least one capability")
    signature = issuer.sign_varsig(
        signing_input(
            issuer.did,
            audience,
            capabilities,
            expiration=expiration,
            proofs=proofs,
            facts=facts,
            nonce=nonce,
            not_before=not_before,
        )
    )
    model: dict[str, Any] = {
        "v": UCAN_VERSION,
        "iss": did_to_bytes(issuer.did),
        "aud": did_to_bytes(audience),
        "att": [capability.to_ipld() for capability in capabilities],
        "exp": expiration,
        "prf": list(proofs),
        "s": signature,
    }
    if facts:
        model["fct"] = [dict(fact) for fact in facts]
    if nonce:
        model["nnc"] = nonce
    if not_before:
        model["nbf"] = not_before
    block = cbor_block(model)
    return Ucan(
        cid=block.cid,
        data=block.data,
        version=UCAN_VERSION,
        issuer=issuer.did,
        audience=audience,
        capabilities=tuple(capabilities),
        expiration=expiration,
        proofs=tuple(proofs),
        facts=tuple(dict(fact) for fact in facts),
        nonce=nonce or None,
        not_before=not_before or None,
        signature=signature,
    )


def invocation(
    issuer: Signer,
    audience: str,
    capability: Capability,
    *,
    proofs: Sequence[CID],
    expiration: int | None,
    facts: Sequence[Mapping[str, Any]] = (),
    nonce: str | None = None,
) -> Block:
    """The block of a one-capability invocation, byte for byte as ucanto encodes it."""
    return issue(
        issuer,
        audience,
        [capability],
        expiration=expiration,
        proofs=proofs,
        facts=facts,
        nonce=nonce,
    ).block


def _optional_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise MalformedUcan(f"UCAN '{field}' is an integer or null")
    return value


def decode_ucan(block: Block) -> Ucan:
    """Decode a UCAN block (no signature or expiry check: see ``Ucan.verify_signature``)."""
    try:
        value = dagcbor.decode(block.data)
    except ValueError as exc:
        raise MalformedUcan(f"UCAN {block.cid} is not DAG-CBOR: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedUcan(f"UCAN {block.cid} is not a map")
    version, iss, aud, att = value.get("v"), value.get("iss"), value.get("aud"), value.get("att")
    prf, sig, fct, nnc = (
        value.get("prf", []),
        value.get("s"),
        value.get("fct", []),
        value.get("nnc"),
    )
    if not isinstance(version, str) or not version.startswith("0.9."):
        raise MalformedUcan(f"UCAN {block.cid}: version {version!r} is not 0.9.x")
    if type(iss) is not bytes or type(aud) is not bytes:
        raise MalformedUcan(f"UCAN {block.cid}: 'iss' and 'aud' are DID bytes")
    if not isinstance(att, list) or not att:
        raise MalformedUcan(f"UCAN {block.cid}: 'att' is a non-empty list")
    if not isinstance(prf, list) or not all(isinstance(proof, CID) for proof in prf):
        raise MalformedUcan(f"UCAN {block.cid}: 'prf' is a list of links")
    if not isinstance(fct, list) or not all(isinstance(fact, dict) for fact in fct):
        raise MalformedUcan(f"UCAN {block.cid}: 'fct' is a list of maps")
    if nnc is not None and not isinstance(nnc, str):
        raise MalformedUcan(f"UCAN {block.cid}: 'nnc' is a string")
    if type(sig) is not bytes:
        raise MalformedUcan(f"UCAN {block.cid}: 's' is the signature bytes")
    if "exp" not in value:
        raise MalformedUcan(f"UCAN {block.cid}: 'exp' is required (null for never)")
    return Ucan(
        cid=block.cid,
        data=block.data,
        version=version,
        issuer=did_from_bytes(iss),
        audience=did_from_bytes(aud),
        capabilities=tuple(Capability.from_ipld(item) for item in att),
        expiration=_optional_int(value["exp"], "exp"),
        proofs=tuple(prf),
        facts=tuple(fct),
        nonce=nnc,
        not_before=_optional_int(value.get("nbf"), "nbf"),
        signature=sig,
    )
