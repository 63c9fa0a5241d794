"""The formats every part of relay speaks: multihashes, CIDs, DAG-CBOR and CARv1.

Pure code: nothing here does I/O or imports trio.
"""

from relay.ipld import dagcbor, multihash
from relay.ipld.block import Block, cbor_block, raw_block
from relay.ipld.cid import CAR, CID, DAG_CBOR, DAG_PB, RAW, CIDError, blob_key, parse_blob_key

__all__ = [
    "CAR",
    "CID",
    "DAG_CBOR",
    "DAG_PB",
    "RAW",
    "Block",
    "CIDError",
    "blob_key",
    "cbor_block",
    "dagcbor",
    "multihash",
    "parse_blob_key",
    "raw_block",
]
