"""Walking what a root set reaches: the mark of garbage collection and the walk of fsck.

From each retained root (``relay.bucket.roots``) the walk visits the bucket's MST nodes
level by level (each level's unvisited nodes fetched in one batch), the manifest of each
entry, and each object's body: a raw chunk, or a UnixFS DAG whose interior nodes are
fetched (again a level at a time) down to its raw leaves. Each block is visited once
across all roots, so successive versions of a bucket, which share nearly all their nodes,
cost only what changed between them.

What it collects: ``blocks`` (the multihashes of the structural blocks reached: MST
nodes, manifests, UnixFS interior nodes, which live inside CAR blobs) and ``chunks`` (the
raw leaves, each a blob of its own). ``reachable_blobs`` turns that into blobs: each chunk,
and each CAR the registry's ``block_locations`` says holds a reached block (a CAR is live
if any block in it is).

Two uses. Garbage collection must not sweep on a partial mark, so it walks with
``strict=True``: any block it cannot read (missing, corrupt, the store unavailable) ends
the walk with that error, and nothing is swept. fsck walks with ``strict=False`` and
``verify_chunks=True``: every structural block is read from the store (never a cache) and
each chunk is read whole, all verified against their CIDs by the store; what fails is
recorded as a ``Problem`` naming the bucket, the version and (where one is known) the key,
and the walk goes on around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import trio

from relay.bucket.blocks import BlockReader
from relay.bucket.manifest import decode_manifest
from relay.bucket.roots import Root
from relay.ipld.cid import CID, RAW
from relay.mst import EMPTY_NODE, MalformedNode, decode_node
from relay.registry.base import Registry
from relay.store.base import BlobNotFound, BlobStore, CorruptBlob, StoreError
from relay.unixfs import MalformedNode as MalformedFileNode
from relay.unixfs import decode_file_node

# Blocks fetched per batch (one registry query and one batched store read).
BATCH: Final = 256


class Pacer:
    """At most ``per_second`` operations a second (0: unbounded), as a token bucket that
    may run one second ahead: garbage collection's bounded I/O rate."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._allowance = per_second
        self._last = trio.current_time() if per_second > 0 else 0.0

    async def spend(self, operations: int = 1) -> None:
        if self.per_second <= 0:
            await trio.lowlevel.checkpoint()
            return
        now = trio.current_time()
        self._allowance = min(
            self.per_second, self._allowance + (now - self._last) * self.per_second
        )
        self._last = now
        self._allowance -= operations
        if self._allowance < 0:
            await trio.sleep(-self._allowance / self.per_second)
        else:
            await trio.lowlevel.checkpoint()


@dataclass(frozen=True, slots=True)
class Problem:
    """A block a retained root reaches that could not be read back intact."""

    bucket: str
    version: int | None  # None: a pinned root
    key: str | None  # None: an MST node (it holds many keys)
    block: CID
    what: str  # "MST node", "manifest", "UnixFS node" or "chunk"
    kind: str  # "missing" or "corrupt"
    detail: str


class IncompleteMark(StoreError):
    """A block the root set reaches could not be read: garbage collection sweeps nothing
    (run ``relay fsck`` to see what is damaged)."""


@dataclass
class Walk:
    blocks: BlockReader
    store: BlobStore
    pacer: Pacer = field(default_factory=lambda: Pacer(0))
    strict: bool = True
    verify_chunks: bool = False
    # Called with the number of blocks and chunks reached so far (a progress bar).
    progress: Callable[[int], object] | None = None
    blocks_reached: set[bytes] = field(default_factory=set)
    chunks: set[bytes] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    _bad_chunks: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    _bodies: set[CID] = field(default_factory=set)

    async def walk(self, root: Root) -> None:
        # The empty tree's root is known without loading (no CAR holds it).
        level = [root.root] if root.root != EMPTY_NODE.cid else []
        while level:
            fresh = [
                cid for cid in dict.fromkeys(level) if cid.multihash not in self.blocks_reached
            ]
            self.blocks_reached.update(cid.multihash for cid in fresh)
            below: list[CID] = []
            entries: list[tuple[str, CID]] = []
            for cid, data in await self._fetch(fresh, root, None, "MST node"):
                try:
                    node = decode_node(data)
                except MalformedNode as exc:
                    self._problem(root, None, cid, "MST node", "corrupt", str(exc))
                    continue
                below.extend(c for c in (node.left, *(e.right for e in node.entries)) if c)
                entries.extend((e.key.decode("utf-8", "replace"), e.value) for e in node.entries)
            await self._objects(root, entries)
            level = below
            self._report()

    async def _objects(self, root: Root, entries: list[tuple[str, CID]]) -> None:
        fresh = [(key, cid) for key, cid in entries if cid.multihash not in self.blocks_reached]
        self.blocks_reached.update(cid.multihash for _, cid in fresh)
        for start in range(0, len(fresh), BATCH):
            batch = fresh[start : start + BATCH]
            keys = {cid: key for key, cid in batch}
            for cid, data in await self._fetch([cid for _, cid in batch], root, keys, "manifest"):
                try:
                    manifest = decode_manifest(data)
                except ValueError as exc:
                    self._problem(root, keys[cid], cid, "manifest", "corrupt", str(exc))
                    continue
                await self._body(root, keys[cid], manifest.body)

    async def _body(self, root: Root, key: str, body: CID) -> None:
        if body in self._bodies:
            return  # walked for another key (a problem in it is reported there)
        self._bodies.add(body)
        level = [body]
        while level:
            leaves = [cid for cid in level if cid.codec == RAW]
            await self._check_chunks(root, key, leaves)
            nodes = [cid for cid in level if cid.codec != RAW]
            fresh = [
                cid for cid in dict.fromkeys(nodes) if cid.multihash not in self.blocks_reached
            ]
            self.blocks_reached.update(cid.multihash for cid in fresh)
            below: list[CID] = []
            for start in range(0, len(fresh), BATCH):
                batch = fresh[start : start + BATCH]
                keys = dict.fromkeys(batch, key)
                for cid, data in await self._fetch(batch, root, keys, "UnixFS node"):
                    try:
                        below.extend(link.cid for link in decode_file_node(data).links)
                    except MalformedFileNode as exc:
                        self._problem(root, key, cid, "UnixFS node", "corrupt", str(exc))
            level = below

    async def _check_chunks(self, root: Root, key: str, leaves: Sequence[CID]) -> None:
        for cid in leaves:
            mh = cid.multihash
            if mh not in self.chunks:
                self.chunks.add(mh)
                if self.verify_chunks:
                    await self.pacer.spend()
                    try:
                        await self.store.get(mh)
                    except BlobNotFound as exc:
                        self._bad_chunks[mh] = ("missing", str(exc))
                    except CorruptBlob as exc:
                        self._bad_chunks[mh] = ("corrupt", str(exc))
            bad = self._bad_chunks.get(mh)
            if bad is not None:
                self._problem(root, key, cid, "chunk", *bad)
        self._report()

    async def _fetch(
        self, cids: Sequence[CID], root: Root, keys: dict[CID, str] | None, what: str
    ) -> list[tuple[CID, bytes]]:
        """The verified bytes of each of ``cids`` that could be read, in batches."""
        found: list[tuple[CID, bytes]] = []
        for start in range(0, len(cids), BATCH):
            batch = list(cids[start : start + BATCH])
            await self.pacer.spend(len(batch))
            try:
                found.extend(zip(batch, await self.blocks.fetch_many(batch), strict=True))
                continue
            except (BlobNotFound, CorruptBlob):
                if self.strict:
                    raise
            for cid in batch:  # find which of them failed
                key = None if keys is None else keys.get(cid)
                try:
                    found.append((cid, await self.blocks.fetch(cid)))
                except BlobNotFound as exc:
                    self._problem(root, key, cid, what, "missing", str(exc))
                except CorruptBlob as exc:
                    self._problem(root, key, cid, what, "corrupt", str(exc))
        return found

    def _problem(
        self, root: Root, key: str | None, cid: CID, what: str, kind: str, detail: str
    ) -> None:
        if self.strict:
            raise IncompleteMark(f"{what} {cid} of bucket {root.bucket!r} is {kind}: {detail}")
        self.problems.append(Problem(root.bucket, root.version, key, cid, what, kind, detail))

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(len(self.blocks_reached) + len(self.chunks))


async def reachable_blobs(
    walk: Walk, registry: Registry, extra: Sequence[bytes] = ()
) -> set[bytes]:
    """The blobs what ``walk`` reached lives in (chunks, and the CARs holding its blocks),
    and ``extra`` (the chunks of open uploads)."""
    blobs = set(walk.chunks) | set(extra)
    reached = list(walk.blocks_reached)
    for start in range(0, len(reached), 10_000):
        located = await registry.find_blocks(reached[start : start + 10_000])
        blobs.update(location.blob for location in located.values())
    return blobs
