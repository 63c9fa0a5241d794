"""Covering proofs: the nodes that show a key's value (or absence) and its neighbours.

This is atproto's ``getCoveringProof`` (sync 1.1): for each operation a commit carries the
nodes on three root-to-leaf paths of the tree AFTER the commit, enough to check the
operation and to invert it (re-insert a deleted key, remove an added one) from those nodes
alone:

- the search path of the key (down the gap that would hold it, until found or null);
- the left-neighbour path: down the gap left of where the key is (its left subtree if the
  key is in the node), which runs down the right spine of everything below the key;
- the right-neighbour path: down the gap right of the key if it is in the node, else the
  gap that would hold it, which runs down the left spine of everything above the key.
"""

from __future__ import annotations

from bisect import bisect_left

from relay.ipld.cid import CID
from relay.mst.node import EMPTY_NODE
from relay.mst.tree import Loader


def _path(root: CID, key: bytes, load: Loader, side: int) -> list[CID]:
    """Nodes from the root down; side -1 = left neighbour, 0 = the key, 1 = right neighbour."""
    path = []
    cid: CID | None = root
    while cid is not None:
        path.append(cid)
        node = EMPTY_NODE if cid == EMPTY_NODE.cid else load(cid)
        keys = node.keys
        gap = bisect_left(keys, key)
        found = gap < len(keys) and keys[gap] == key
        if found and side == 0:
            break
        if found and side == 1:
            gap += 1
        cid = node.subtree(gap)
    return path


def covering_proof(root: CID, key: bytes, load: Loader) -> set[CID]:
    """The CIDs of the nodes in the covering proof of ``key`` in the tree ``root``."""
    return {cid for side in (-1, 0, 1) for cid in _path(root, key, load, side)}


def search_path(root: CID, key: bytes, load: Loader) -> list[CID]:
    """The nodes a lookup of ``key`` visits, root first (a proof of its value or absence)."""
    return _path(root, key, load, 0)
