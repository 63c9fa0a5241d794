"""relay's Merkle Search Tree: atproto's MST format over bytes keys, as pure functions.

A bucket is an MST root CID: keys are object keys (bytes, bytewise order), values are
manifest CIDs. Operations take a root and a ``load(cid) -> Node`` callable that raises
``MissingBlock`` for nodes it does not have; see ``tree`` for the theory of operation and
``layer`` for why the tree has one shape per key set.
"""

from relay.mst.cache import NodeCache, NodeCacheStatistics
from relay.mst.layer import common_prefix_length, key_layer
from relay.mst.node import EMPTY_NODE, Entry, MalformedNode, MissingBlock, Node, decode_node
from relay.mst.proof import covering_proof, search_path
from relay.mst.tree import ApplyResult, Change, Loader, apply, build, diff, get, walk

__all__ = [
    "EMPTY_NODE",
    "ApplyResult",
    "Change",
    "Entry",
    "Loader",
    "MalformedNode",
    "MissingBlock",
    "Node",
    "NodeCache",
    "NodeCacheStatistics",
    "apply",
    "build",
    "common_prefix_length",
    "covering_proof",
    "decode_node",
    "diff",
    "get",
    "key_layer",
    "search_path",
    "walk",
]
