"""ucanto receipts: the signed outcome of one invocation.

A receipt block is ``{ocm: {ran, out, fx, meta, iss, prf}, sig}``: ``ran`` links the
invocation, ``out`` is ``{ok: …}`` or ``{error: {name, message, …}}``, ``fx`` is
``{fork: [links]}`` (+ ``join``) naming follow-up tasks, ``iss`` the issuer's DID *string*,
and ``sig`` the issuer's varsig over ``dag-cbor(ocm)`` (not a JWT, unlike UCANs).

Believing a receipt takes three checks, each its own exception: ``ran`` is the invocation
we sent (``WrongInvocation``), ``iss`` is the service we invoked (``WrongIssuer``), and
``sig`` verifies against that DID's key (``BadSignature``). Only then does ``unwrap()``
turn ``out`` into a value or a typed ``UcantoError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.ipld import dagcbor
from relay.ipld.block import Block, cbor_block
from relay.ipld.cid import CID
from relay.ucan.errors import (
    BadSignature,
    MalformedUcan,
    WrongInvocation,
    WrongIssuer,
    ucanto_error,
)
from relay.ucan.keys import Signer, parse_did_key


@dataclass(frozen=True, slots=True)
class Effects:
    """``fx``: tasks the service started (``fork``) and the one it continues with."""

    fork: tuple[CID, ...] = ()
    join: CID | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Receipt:
    """A decoded receipt. ``out`` is the raw ``{ok: …}`` / ``{error: …}`` map; ``blocks``
    are the other blocks that arrived with it (the location claim is among them)."""

    cid: CID
    ran: CID
    out: Mapping[str, Any]
    fx: Effects
    meta: Mapping[str, Any]
    issuer: str | None
    proofs: tuple[CID, ...]
    signature: bytes
    signed_bytes: bytes = field(repr=False)
    blocks: Mapping[CID, bytes] = field(default_factory=dict, repr=False)

    @property
    def is_ok(self) -> bool:
        return "ok" in self.out

    @property
    def ok(self) -> Any:
        """The ``ok`` value, or ``None`` when the outcome is an error."""
        return self.out.get("ok")

    @property
    def error(self) -> Any:
        return self.out.get("error")

    def verify(self, expected_issuer: str, *, ran: CID | None = None) -> None:
        """Refuse a receipt not issued and signed by ``expected_issuer`` (a did:key), or,
        when ``ran`` is given, one that answers another invocation."""
        if ran is not None and self.ran != ran:
            raise WrongInvocation(f"receipt {self.cid} ran {self.ran}, not {ran}")
        issuer = self.issuer if self.issuer is not None else expected_issuer
        if issuer != expected_issuer:
            raise WrongIssuer(f"receipt {self.cid} issued by {issuer}, not {expected_issuer}")
        if not parse_did_key(issuer).verify_varsig(self.signed_bytes, self.signature):
            raise BadSignature(f"receipt {self.cid}: the signature does not verify for {issuer}")

    def unwrap(self) -> Any:
        """The ``ok`` value; an error outcome raises its ``UcantoError`` subclass."""
        if "ok" in self.out:
            return self.out["ok"]
        raise ucanto_error(self.out.get("error"))


def decode_receipt(block: Block, blocks: Mapping[CID, bytes] | None = None) -> Receipt:
    """Decode a receipt block (no checks beyond shape: see ``Receipt.verify``)."""
    try:
        value = dagcbor.decode(block.data)
    except ValueError as exc:
        raise MalformedUcan(f"receipt {block.cid} is not DAG-CBOR: {exc}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("ocm"), dict):
        raise MalformedUcan(f"receipt {block.cid} is not {{ocm, sig}}")
    ocm, sig = value["ocm"], value.get("sig")
    ran, out, fx = ocm.get("ran"), ocm.get("out"), ocm.get("fx", {})
    issuer, proofs, meta = ocm.get("iss"), ocm.get("prf", []), ocm.get("meta", {})
    if type(sig) is not bytes:
        raise MalformedUcan(f"receipt {block.cid}: 'sig' is bytes")
    if not isinstance(ran, CID):
        raise MalformedUcan(f"receipt {block.cid}: 'ran' is a link to the invocation")
    if not isinstance(out, dict) or len(out) != 1 or not ("ok" in out or "error" in out):
        raise MalformedUcan(f"receipt {block.cid}: 'out' is {{ok: …}} or {{error: …}}")
    if issuer is not None and not isinstance(issuer, str):
        raise MalformedUcan(f"receipt {block.cid}: 'iss' is a DID string")
    if not isinstance(proofs, list) or not all(isinstance(proof, CID) for proof in proofs):
        raise MalformedUcan(f"receipt {block.cid}: 'prf' is a list of links")
    if not isinstance(meta, dict):
        raise MalformedUcan(f"receipt {block.cid}: 'meta' is a map")
    return Receipt(
        cid=block.cid,
        ran=ran,
        out=out,
        fx=_effects(fx, block.cid),
        meta=meta,
        issuer=issuer,
        proofs=tuple(proofs),
        signature=sig,
        signed_bytes=dagcbor.encode(ocm),
        blocks=blocks if blocks is not None else {},
    )


def _effects(fx: Any, cid: CID) -> Effects:
    if not isinstance(fx, dict):
        raise MalformedUcan(f"receipt {cid}: 'fx' is a map")
    fork, join = fx.get("fork", []), fx.get("join")
    if not isinstance(fork, list) or not all(isinstance(task, CID) for task in fork):
        raise MalformedUcan(f"receipt {cid}: 'fx.fork' is a list of links")
    if join is not None and not isinstance(join, CID):
        raise MalformedUcan(f"receipt {cid}: 'fx.join' is a link")
    return Effects(tuple(fork), join)


def issue_receipt(
    issuer: Signer,
    ran: CID,
    out: Mapping[str, Any],
    *,
    fx: Effects | None = None,
    meta: Mapping[str, Any] | None = None,
    proofs: Sequence[CID] = (),
) -> Block:
    """Sign a receipt as ucanto does (a service's answer; a client's for ``http/put``)."""
    fx = fx if fx is not None else Effects()
    effects: dict[str, Any] = {"fork": list(fx.fork)}
    if fx.join is not None:
        effects["join"] = fx.join
    ocm = {
        "ran": ran,
        "out": dict(out),
        "fx": effects,
        "meta": dict(meta) if meta is not None else {},
        "iss": issuer.did,
        "prf": list(proofs),
    }
    return cbor_block({"ocm": ocm, "sig": issuer.sign_varsig(dagcbor.encode(ocm))})
