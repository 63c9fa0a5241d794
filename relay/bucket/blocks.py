"""Structural blocks by CID: MST nodes, manifests and UnixFS interior nodes.

Such a block lives inside a CAR blob (a commit CAR or an index CAR); the registry knows
where (block multihash → blob, offset, length). A read asks the store for that byte range
*naming the block's own multihash*, so the store verifies the bytes before they reach us.

The pure cores (``relay.mst``, ``relay.unixfs``) take a synchronous loader that raises
``MissingBlock`` on a miss. ``run_with_blocks`` is the bridge: it runs a core operation
against what is in memory, and on a miss fetches that block asynchronously and runs the
operation again. A walk (a listing page) passes its root and cursor, and a miss then
fetches the nodes the walk will reach next along with the missing one: level by level
from the root, the first ``PREFETCH_WIDTH`` subtrees at or after the cursor in key order,
each level's uncached nodes in one registry query and one batched store read. A cold
1,000-key page costs a few such waves instead of some 400 single-node round trips.
MST nodes written by a batch that is not committed yet are *pinned* here (``pin_nodes``)
so the next batch can build on them before they are findable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from relay.bucket.manifest import Manifest, ObjectSummary, decode_manifest
from relay.ipld.cid import CID
from relay.lru import LruCache
from relay.mst import MissingBlock, Node, NodeCache, decode_node
from relay.registry.base import Registry
from relay.store.base import BlobNotFound, BlobRead, BlobStore
from relay.unixfs import FileNode, decode_file_node

T = TypeVar("T")
V = TypeVar("V")

# Nodes per level a walk's prefetch fetches ahead of its cursor: a few hundred keys' worth.
PREFETCH_WIDTH = 128

# Decoded MST nodes: ~55,000 nodes of short keys, the whole tree of a 200,000-key bucket.
DEFAULT_NODE_CACHE_BYTES = 64 << 20
# Decoded manifests (~0.9 KiB each without metadata): many listing pages' worth.
DEFAULT_MANIFEST_CACHE_BYTES = 16 << 20
# Listing summaries (~0.35 KiB each): a 140,000-key bucket listed again from memory.
DEFAULT_SUMMARY_CACHE_BYTES = 48 << 20
# Decoded UnixFS file nodes (~41 KiB each at width 174): the top of some 400 files, or the
# whole index of ~70 GiB of 1 MiB chunks.
DEFAULT_FILE_NODE_CACHE_BYTES = 16 << 20


def manifest_memory(manifest: Manifest) -> int:
    """About how many bytes a decoded manifest holds: ~900 measured for one with no
    metadata (tracemalloc), plus its strings."""
    size = 900 + len(manifest.key)
    for mapping in (manifest.metadata, manifest.headers, manifest.tags):
        if mapping:
            size += 2 * sum(len(name) + len(value) for name, value in mapping.items())
    if manifest.part_sizes:
        size += 16 * len(manifest.part_sizes)
    return size


def summary_memory(summary: ObjectSummary) -> int:
    """About how many bytes a cached summary holds: ~320 measured with tracemalloc for
    the summary and its cache entry, plus its ETag. (The value is small, so unlike the
    other estimates this one counts the cache's own entry.)"""
    return 320 + len(summary.etag)


def file_node_memory(node: FileNode) -> int:
    """About how many bytes a decoded file node holds: ~240 per link (its CID, multihash
    and sizes) over ~140 for the node, measured with tracemalloc."""
    return 140 + 240 * len(node.links)


@dataclass(frozen=True, slots=True)
class BlockReaderStatistics:
    block_fetches: int
    node_cache_size: int
    manifest_cache_size: int
    pinned_blocks: int
    summary_cache_size: int
    file_node_cache_size: int


class BlockReader:
    def __init__(
        self,
        store: BlobStore,
        registry: Registry,
        *,
        node_cache_bytes: int = DEFAULT_NODE_CACHE_BYTES,
        manifest_cache_bytes: int = DEFAULT_MANIFEST_CACHE_BYTES,
        summary_cache_bytes: int = DEFAULT_SUMMARY_CACHE_BYTES,
        file_node_cache_bytes: int = DEFAULT_FILE_NODE_CACHE_BYTES,
    ) -> None:
        self._store = store
        self._registry = registry
        self.nodes = NodeCache(node_cache_bytes)
        self._manifests: LruCache[CID, Manifest] = LruCache(manifest_cache_bytes, manifest_memory)
        self._summaries: LruCache[CID, ObjectSummary] = LruCache(
            summary_cache_bytes, summary_memory
        )
        # Decoded, because a ranged read decodes the same top nodes every time otherwise:
        # ~1.5 ms for a node of 174 links, more than reading and verifying its chunks.
        self._file_nodes: LruCache[CID, FileNode] = LruCache(
            file_node_cache_bytes, file_node_memory
        )
        self._pinned_nodes: dict[CID, tuple[Node, int]] = {}
        self._fetches = 0

    # -- uncommitted blocks --------------------------------------------------------------

    def pin_nodes(self, nodes: dict[CID, Node]) -> None:
        # Counted: two batches (a batch and its rebase) can make the same node.
        for cid, node in nodes.items():
            held = self._pinned_nodes.get(cid)
            self._pinned_nodes[cid] = (node, 1 if held is None else held[1] + 1)

    def unpin_nodes(self, cids: Iterable[CID], *, committed: bool) -> None:
        for cid in cids:
            held = self._pinned_nodes.get(cid)
            if held is None:
                continue
            node, count = held
            if count > 1:
                self._pinned_nodes[cid] = (node, count - 1)
                continue
            del self._pinned_nodes[cid]
            if committed:
                self.nodes.put(node)

    # -- loaders for the pure cores ------------------------------------------------------

    def node_nowait(self, cid: CID) -> Node:
        held = self._pinned_nodes.get(cid)
        if held is not None:
            return held[0]
        node = self.nodes.get(cid)
        if node is None:
            raise MissingBlock(cid)
        return node

    def file_node_nowait(self, cid: CID) -> FileNode:
        node = self._file_nodes.get(cid)
        if node is None:
            raise MissingBlock(cid)
        return node

    # -- fetching ------------------------------------------------------------------------

    async def fetch(self, cid: CID) -> bytes:
        """The bytes of a structural block, verified against ``cid``."""
        return (await self.fetch_many([cid]))[0]

    async def fetch_node(self, cid: CID) -> Node:
        node = self._cached_node(cid)
        if node is None:
            node = decode_node(await self.fetch(cid))
            self.nodes.put(node)
        return node

    async def fetch_many(self, cids: Sequence[CID]) -> list[bytes]:
        """Several structural blocks, each verified, in order: one registry query and one
        batched store read for them all (each distinct CID asked for once)."""
        wanted = list(dict.fromkeys(cids))
        found: dict[CID, bytes] = {}
        if wanted:
            locations = await self._registry.find_blocks([cid.multihash for cid in wanted])
            reads = []
            for cid in wanted:
                location = locations.get(cid.multihash)
                if location is None:
                    raise BlobNotFound(cid.multihash)
                reads.append(
                    BlobRead(location.blob, location.offset, location.length, cid.multihash)
                )
            self._fetches += len(wanted)
            for cid, data in zip(wanted, await self._store.get_many(reads), strict=True):
                found[cid] = data
        return [found[cid] for cid in cids]

    async def fetch_nodes_ahead(self, root: CID, cursor: bytes) -> None:
        """Fetch the nodes a walk from ``cursor`` reaches next: level by level from the
        root, the first ``PREFETCH_WIDTH`` subtrees (in key order) that hold keys at or
        after ``cursor``; cached nodes are expanded, the others fetched in one batch."""
        level = [root]
        while level:
            missing = [cid for cid in level if self._cached_node(cid) is None]
            fetched: dict[CID, Node] = {}
            if missing:
                for cid, data in zip(missing, await self.fetch_many(missing), strict=True):
                    node = fetched[cid] = decode_node(data)
                    self.nodes.put(node)
            below: list[CID] = []
            for cid in level:
                found = fetched.get(cid) or self._cached_node(cid)
                if found is not None:  # None only if evicted already: stop below it
                    below.extend(subtrees_reaching(found, cursor))
            level = below[:PREFETCH_WIDTH]

    def _cached_node(self, cid: CID) -> Node | None:
        held = self._pinned_nodes.get(cid)
        return held[0] if held is not None else self.nodes.get(cid)

    async def fetch_file_node(self, cid: CID) -> FileNode:
        node = self._file_nodes.get(cid)
        if node is None:
            node = decode_file_node(await self.fetch(cid))
            self._file_nodes.put(cid, node)
        return node

    async def manifest(self, cid: CID) -> Manifest:
        return (await self.manifests([cid]))[0]

    async def manifests(self, cids: Sequence[CID]) -> list[Manifest]:
        """Several manifests in order; those not cached are fetched in one batch."""
        return await self._through_cache(
            cids, self._manifests.get, decode_manifest, self._manifests.put
        )

    async def summaries(self, cids: Sequence[CID]) -> list[ObjectSummary]:
        """What listings show of several objects, in order. A miss is fetched and decoded
        (in one batch) but its whole manifest is not cached: a listing of many keys would
        only push out the manifests that HEAD and GET are using."""
        return await self._through_cache(
            cids,
            self._cached_summary,
            lambda data: decode_manifest(data).summary(),
            self._summaries.put,
        )

    def _cached_summary(self, cid: CID) -> ObjectSummary | None:
        summary = self._summaries.get(cid)
        if summary is None:
            manifest = self._manifests.get(cid)
            if manifest is not None:
                summary = manifest.summary()
                self._summaries.put(cid, summary)
        return summary

    async def _through_cache(
        self,
        cids: Sequence[CID],
        cached: Callable[[CID], V | None],
        decode: Callable[[bytes], V],
        keep: Callable[[CID, V], None],
    ) -> list[V]:
        """``cids`` decoded, in order: each from ``cached`` if there, the rest fetched in
        one batch, decoded and handed to ``keep``."""
        found: dict[CID, V] = {}
        missing: list[CID] = []
        for cid in cids:
            value = cached(cid)
            if value is None:
                missing.append(cid)
            else:
                found[cid] = value
        if missing:
            for cid, data in zip(missing, await self.fetch_many(missing), strict=True):
                value = found[cid] = decode(data)
                keep(cid, value)
        return [found[cid] for cid in cids]

    def remember_manifest(self, cid: CID, manifest: Manifest) -> None:
        self._manifests.put(cid, manifest)

    async def run_with_nodes(
        self,
        operation: Callable[[Callable[[CID], Node]], T],
        *,
        walk: tuple[CID, Callable[[], bytes]] | None = None,
    ) -> T:
        """Run a pure MST operation, fetching the nodes it misses and retrying.

        A walk names its root and cursor (where it will resume); a miss then prefetches
        the nodes the walk reaches next, not just the one it missed.
        """
        while True:
            try:
                return operation(self.node_nowait)
            except MissingBlock as missing:
                # The node cache holds far more nodes than one operation touches, so a
                # fetched node is still there when the retry reaches it.
                if walk is None:
                    await self.fetch_node(missing.cid)
                else:
                    root, cursor = walk
                    await self.fetch_nodes_ahead(root, cursor())

    async def run_with_file_nodes(self, operation: Callable[[Callable[[CID], FileNode]], T]) -> T:
        """Run a pure UnixFS operation, fetching the file nodes it misses."""
        while True:
            try:
                return operation(self.file_node_nowait)
            except MissingBlock as missing:
                await self.fetch_file_node(missing.cid)

    def cache_figures(self) -> dict[str, tuple[int, int, int]]:
        """Each cache's (hits, misses, estimated bytes held), for the metrics."""
        nodes = self.nodes.statistics()
        figures = {"mst_node": (nodes.hits, nodes.misses, nodes.memory_bytes)}
        for name, cache in (
            ("manifest", self._manifests),
            ("summary", self._summaries),
            ("file_node", self._file_nodes),
        ):
            figures[name] = (cache.hits, cache.misses, cache.memory_bytes)
        return figures

    def statistics(self) -> BlockReaderStatistics:
        return BlockReaderStatistics(
            self._fetches,
            len(self.nodes),
            len(self._manifests),
            len(self._pinned_nodes),
            len(self._summaries),
            len(self._file_nodes),
        )


def subtrees_reaching(node: Node, cursor: bytes) -> list[CID]:
    """The node's subtrees, in key order, that can hold keys at or after ``cursor``."""
    entries = node.entries
    reaching: list[CID] = []
    if node.left is not None and (not entries or cursor < entries[0].key):
        reaching.append(node.left)
    for index, entry in enumerate(entries):
        if entry.right is not None and (
            index + 1 == len(entries) or cursor < entries[index + 1].key
        ):
            reaching.append(entry.right)
    return reaching
