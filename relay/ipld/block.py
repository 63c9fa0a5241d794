"""A block: bytes and the CID that names them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from relay.ipld import dagcbor
from relay.ipld.cid import CID


@dataclass(frozen=True, slots=True)
class Block:
    cid: CID
    data: bytes


def cbor_block(value: Any) -> Block:
    """Encode ``value`` as DAG-CBOR and name it with a CIDv1 (dag-cbor, sha2-256)."""
    data = dagcbor.encode(value)
    return Block(CID.dag_cbor_sha256(hashlib.sha256(data).digest()), data)


def raw_block(data: bytes) -> Block:
    return Block(CID.raw_sha256(hashlib.sha256(data).digest()), data)
