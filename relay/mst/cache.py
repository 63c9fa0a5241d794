"""An LRU cache of decoded MST nodes, and the loader the tree operations call.

Lookups and listings of a big bucket touch the same top layers again and again: with about
four keys a node, the top few layers of a million-key tree are a few hundred nodes, so a
cache of tens of thousands of nodes keeps every path but its last layers in memory. Nodes
are immutable and named by their hash, so a cached node never goes stale; eviction is the
only policy needed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from relay.ipld.cid import CID
from relay.mst.node import MissingBlock, Node


@dataclass(frozen=True, slots=True)
class NodeCacheStatistics:
    hits: int
    misses: int
    size: int
    capacity: int
    evictions: int


class NodeCache:
    """CID -> Node, least recently used evicted first. ``load`` is an MST loader."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a node cache holds at least one node")
        self._capacity = capacity
        self._nodes: OrderedDict[CID, Node] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def get(self, cid: CID) -> Node | None:
        node = self._nodes.get(cid)
        if node is None:
            self._misses += 1
            return None
        self._hits += 1
        self._nodes.move_to_end(cid)
        return node

    def load(self, cid: CID) -> Node:
        """The node, or ``MissingBlock(cid)``: pass as ``load`` to the tree operations."""
        node = self.get(cid)
        if node is None:
            raise MissingBlock(cid)
        return node

    def put(self, node: Node) -> None:
        nodes = self._nodes
        cid = node.cid
        if cid in nodes:
            nodes.move_to_end(cid)
            return
        nodes[cid] = node
        if len(nodes) > self._capacity:
            nodes.popitem(last=False)
            self._evictions += 1

    def put_many(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.put(node)

    def __contains__(self, cid: object) -> bool:
        return cid in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def statistics(self) -> NodeCacheStatistics:
        return NodeCacheStatistics(
            hits=self._hits,
            misses=self._misses,
            size=len(self._nodes),
            capacity=self._capacity,
            evictions=self._evictions,
        )
