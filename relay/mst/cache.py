"""An LRU cache of decoded MST nodes, and the loader the tree operations call.

Lookups and listings of a big bucket touch the same top layers again and again: with about
four keys a node, the top few layers of a million-key tree are a few hundred nodes, so a
cache of tens of thousands of nodes keeps every path but its last layers in memory. Nodes
are immutable and named by their hash, so a cached node never goes stale; eviction is the
only policy needed.

The cache is bounded in bytes, not nodes: a node's decoded size grows with its keys (S3
keys run to 1 KiB), and a count bound let a server filling a 100,000-key bucket keep
100,000 nodes, most of them superseded by later commits, at ~260 MiB of RSS.
``node_memory`` estimates a decoded node's footprint from its shape (measured with
tracemalloc: ~1.2 KiB for a node of four short keys).
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.ipld.cid import CID
from relay.lru import LruCache
from relay.mst.node import MissingBlock, Node


@dataclass(frozen=True, slots=True)
class NodeCacheStatistics:
    hits: int
    misses: int
    size: int
    memory_bytes: int
    capacity_bytes: int
    evictions: int


# A decoded node: the Node, its tuples and its left CID; each entry: the Entry, its value
# CID (object and bytes) and its right CID, plus the key's own bytes.
_NODE_OVERHEAD_BYTES = 320
_ENTRY_OVERHEAD_BYTES = 220


def node_memory(node: Node) -> int:
    """About how many bytes ``node`` holds in memory once decoded."""
    return (
        _NODE_OVERHEAD_BYTES + _ENTRY_OVERHEAD_BYTES * len(node.entries) + sum(map(len, node.keys))
    )


class NodeCache:
    """CID -> Node, least recently used evicted first. ``load`` is an MST loader.

    Holds nodes up to ``capacity_bytes`` of estimated memory, and always the newest one.
    """

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 1:
            raise ValueError("a node cache needs a positive capacity")
        self._nodes: LruCache[CID, Node] = LruCache(capacity_bytes, node_memory)

    def get(self, cid: CID) -> Node | None:
        return self._nodes.get(cid)

    def load(self, cid: CID) -> Node:
        """The node, or ``MissingBlock(cid)``: pass as ``load`` to the tree operations."""
        node = self.get(cid)
        if node is None:
            raise MissingBlock(cid)
        return node

    def put(self, node: Node) -> None:
        self._nodes.put(node.cid, node)

    def __contains__(self, cid: object) -> bool:
        return cid in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def statistics(self) -> NodeCacheStatistics:
        return NodeCacheStatistics(
            hits=self._nodes.hits,
            misses=self._nodes.misses,
            size=len(self._nodes),
            memory_bytes=self._nodes.memory_bytes,
            capacity_bytes=self._nodes.capacity_bytes,
            evictions=self._nodes.evictions,
        )
