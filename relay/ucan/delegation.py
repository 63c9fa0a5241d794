"""Delegations in ucanto's archive form, as ``piri delegate generate`` prints them.

The printed text is multibase base64 (``m``, no padding) of a CID whose codec is CAR
(0x0202) and whose multihash is the identity hash: the "digest" is a whole CARv1. That
CAR's root is ``{"ucan@0.9.1": <link to the delegation>}``; the delegation block and every
proof block it needs come before the root. A client puts the delegation's CID in ``prf``
and sends ``Delegation.blocks`` (proofs first, the delegation last) in the request CAR.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from relay.ipld import dagcbor, multihash
from relay.ipld.block import Block, cbor_block
from relay.ipld.car import CarBuilder, CarError, read_car
from relay.ipld.cid import CAR, CID, CIDError
from relay.ipld.varint import VarintError, decode_varint
from relay.ucan.dagjson import multibase64_decode, multibase64_encode
from relay.ucan.errors import MalformedUcan
from relay.ucan.ucan import Ucan, decode_ucan

ARCHIVE_TAG: Final = "ucan@0.9.1"


@dataclass(frozen=True, slots=True, eq=False)
class Delegation:
    """A delegation and the blocks of its proof chain."""

    ucan: Ucan
    blocks: tuple[Block, ...]  # proofs first, the delegation itself last

    @property
    def cid(self) -> CID:
        return self.ucan.cid

    def archive(self) -> bytes:
        """The CAR ucanto archives a delegation into (what the printed form wraps)."""
        root = cbor_block({ARCHIVE_TAG: self.cid})
        car = CarBuilder([root.cid])
        for block in self.blocks:
            car.add(block.cid, block.data)
        car.add(root.cid, root.data)
        return car.to_bytes()


def _chain(cid: CID, blocks: Mapping[CID, bytes], seen: set[CID]) -> Iterator[Block]:
    """The delegation's blocks in ucanto's export order: each proof's chain, then itself.
    Proofs not in the archive are left out (the service may already hold them)."""
    if cid in seen or cid not in blocks:
        return
    seen.add(cid)
    block = Block(cid, blocks[cid])
    for proof in decode_ucan(block).proofs:
        yield from _chain(proof, blocks, seen)
    yield block


def delegation_from_archive(car_bytes: bytes) -> Delegation:
    """Read an archived delegation CAR (every block checked against its CID)."""
    try:
        header, car_blocks = read_car(car_bytes)
        blocks = {block.cid: block.data for block in car_blocks}
    except CarError as exc:
        raise MalformedUcan(f"the delegation archive is not a valid CAR: {exc}") from exc
    if len(header.roots) != 1 or header.roots[0] not in blocks:
        raise MalformedUcan("a delegation archive has one root, held in the CAR")
    try:
        variant = dagcbor.decode(blocks[header.roots[0]])
    except ValueError as exc:
        raise MalformedUcan(f"the archive root is not DAG-CBOR: {exc}") from exc
    link = variant.get(ARCHIVE_TAG) if isinstance(variant, dict) else None
    if not isinstance(link, CID) or len(variant) != 1:
        raise MalformedUcan(f"the archive root is not {{{ARCHIVE_TAG!r}: link}}")
    if link not in blocks:
        raise MalformedUcan(f"the delegation {link} is not in its archive")
    chain = tuple(_chain(link, blocks, set()))
    return Delegation(decode_ucan(chain[-1]), chain)


def parse_delegation(text: str) -> Delegation:
    """Read piri's printed delegation: ``m`` + base64 of an identity-multihash CAR CID."""
    binary = multibase64_decode(text.strip())
    try:
        cid = CID.from_bytes(binary)
        code, _ = decode_varint(cid.multihash)
    except (CIDError, VarintError) as exc:
        raise MalformedUcan(f"the delegation text is not a CID: {exc}") from exc
    if cid.version != 1 or cid.codec != CAR or code != multihash.IDENTITY:
        raise MalformedUcan("a printed delegation is a CIDv1 (CAR codec, identity multihash)")
    return delegation_from_archive(multihash.decode(cid.multihash)[1])


def format_delegation(delegation: Delegation) -> str:
    """The printed form ``parse_delegation`` reads (what ``piri delegate generate`` prints)."""
    archive = delegation.archive()
    return multibase64_encode(CID.v1(CAR, multihash.encode(multihash.IDENTITY, archive)).bytes)
