"""The streaming balanced file builder, and file CIDs computed from a stream of bytes.

Theory of operation. ipfs-unixfs-importer's balanced layout is a batch algorithm: group the
leaves, in order, into runs of ``width``; give each run a parent node (even a run of one,
as long as the file has more than one leaf); repeat on the parents until a single node
remains, which is the root. A file of one leaf has that raw leaf as its root.

``FileBuilder`` produces the same tree while the leaves stream past. It keeps one list of
pending links per level. A leaf joins level 0; whenever a level holds ``width`` links,
they become a parent node, which is handed back to the caller at once, and the parent's
link joins the level above (which may fill in turn). This is exactly the batch grouping,
because the batch algorithm also cuts each level into runs of ``width`` from the left,
and a full run at some level always gets a parent (with ``width`` ≥ 2 a full level means
at least one more level exists above it).

``finish()`` closes the partial runs bottom-up. A level's pending links become a parent,
except a single link on the top level, which is the root. The top level is never empty (a
level is created to receive a link and is emptied only by flushing into the level above
it), so a lone link there means nothing was ever flushed out of that level: the batch
algorithm would also hold exactly one node there and stop. Every other partial run (a
lone trailing link under a taller tree included) gets its parent, as in the batch
algorithm.

Memory: at most ``width - 1`` links of (CID, data size, Tsize) per level, i.e.
O(width × depth); leaves' bytes are never kept, nor is the leaf list.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from relay.ipld.block import Block
from relay.ipld.cid import CID, RAW
from relay.unixfs.node import Link, encode_file_node

# 1 MiB chunks and 1024 links per node: the unixfs-v1-2025 profile the Storacha client
# writes. (256 KiB and 174 reproduce `ipfs add --cid-version=1 --raw-leaves`.)
DEFAULT_CHUNK_SIZE: Final = 1 << 20
DEFAULT_WIDTH: Final = 1024


@dataclass(frozen=True, slots=True)
class FileRoot:
    """The outcome of a build: the root and the interior blocks not yet handed out.

    ``depth`` counts node levels above the leaves (0 when the root is the raw leaf).
    """

    cid: CID
    size: int
    tsize: int
    blocks: list[Block]
    depth: int
    leaf_count: int


@dataclass(frozen=True, slots=True)
class BuilderStatistics:
    leaf_count: int
    size: int
    pending_links: int
    levels: int


def _parent(links: list[Link]) -> tuple[Block, Link]:
    data_size = sum(link.data_size for link in links)
    block = encode_file_node(links, data_size)
    tsize = len(block.data) + sum(link.tsize for link in links)
    return block, Link(block.cid, data_size, tsize)


class FileBuilder:
    """Builds a balanced UnixFS file DAG over raw leaves fed in order."""

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        if width < 2:
            raise ValueError("a balanced tree needs a width of at least 2")
        self._width = width
        self._levels: list[list[Link]] = [[]]
        self._leaf_count = 0
        self._size = 0
        self._empty_leaf_seen = False
        self._finished = False

    def add_leaf(self, cid: CID, size: int) -> list[Block]:
        """Add the next raw leaf; return the interior nodes it completed, bottom-up."""
        if self._finished:
            raise RuntimeError("the file is already finished")
        if cid.codec != RAW:
            raise ValueError("leaves must be raw blocks")
        if size < 0:
            raise ValueError("a leaf size cannot be negative")
        if (size == 0 or self._empty_leaf_seen) and self._leaf_count > 0:
            # The importer drops empty leaves from parents; only an empty file has one.
            raise ValueError("only an empty file has an empty leaf, and it is the only leaf")
        self._empty_leaf_seen = size == 0
        self._leaf_count += 1
        self._size += size
        completed: list[Block] = []
        pending = self._levels[0]
        pending.append(Link(cid, size, size))
        level = 0
        while len(pending) == self._width:
            block, link = _parent(pending)
            completed.append(block)
            pending.clear()
            level += 1
            if level == len(self._levels):
                self._levels.append([])
            pending = self._levels[level]
            pending.append(link)
        return completed

    def finish(self) -> FileRoot:
        """Close the partial runs and return the root (see the module docstring)."""
        if self._finished:
            raise RuntimeError("the file is already finished")
        if self._leaf_count == 0:
            raise ValueError("a file has at least one leaf (an empty file: the raw leaf of b'')")
        self._finished = True
        levels = self._levels
        blocks: list[Block] = []
        level = 0
        while True:
            pending = levels[level]
            top = level == len(levels) - 1
            if top and len(pending) == 1:
                root = pending[0]
                return FileRoot(root.cid, self._size, root.tsize, blocks, level, self._leaf_count)
            if pending:
                block, link = _parent(pending)
                blocks.append(block)
                pending.clear()
                if top:
                    levels.append([])
                levels[level + 1].append(link)
            level += 1

    @property
    def leaf_count(self) -> int:
        return self._leaf_count

    def statistics(self) -> BuilderStatistics:
        return BuilderStatistics(
            leaf_count=self._leaf_count,
            size=self._size,
            pending_links=sum(map(len, self._levels)),
            levels=len(self._levels),
        )


class FileHasher:
    """Computes a file's UnixFS root from bytes pushed in pieces of any size.

    Bytes are cut into ``chunk_size`` chunks through one reusable buffer (allocated only
    if a piece does not already hold a whole chunk); each chunk is hashed and forgotten.
    Peak memory is one chunk plus the builder's O(width × depth) links, whatever the size
    of the file. Interior blocks are discarded: this answers "what is the CID", it does
    not store anything.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, width: int = DEFAULT_WIDTH) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._chunk_size = chunk_size
        self._builder = FileBuilder(width)
        self._buffer: memoryview | None = None
        self._fill = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        chunk_size = self._chunk_size
        position = 0
        end = len(view)
        while position < end:
            if self._fill == 0 and end - position >= chunk_size:
                # A whole chunk is already contiguous in the caller's piece: hash it there.
                self._add_chunk(view[position : position + chunk_size])
                position += chunk_size
                continue
            if self._buffer is None:
                self._buffer = memoryview(bytearray(chunk_size))
            take = min(chunk_size - self._fill, end - position)
            self._buffer[self._fill : self._fill + take] = view[position : position + take]
            self._fill += take
            position += take
            if self._fill == chunk_size:
                self._add_chunk(self._buffer)
                self._fill = 0

    def finish(self) -> FileRoot:
        if self._fill or self._builder.leaf_count == 0:
            tail = self._buffer[: self._fill] if self._buffer is not None else memoryview(b"")
            self._add_chunk(tail)
            self._fill = 0
        return self._builder.finish()

    def _add_chunk(self, chunk: memoryview) -> None:
        self._builder.add_leaf(CID.raw_sha256(hashlib.sha256(chunk).digest()), len(chunk))


def cid_of_stream(
    chunks: Iterable[bytes | bytearray | memoryview],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    width: int = DEFAULT_WIDTH,
) -> CID:
    """The UnixFS root CID of the concatenation of ``chunks`` (pieces of any size)."""
    hasher = FileHasher(chunk_size, width)
    for piece in chunks:
        hasher.update(piece)
    return hasher.finish().cid


def file_cid(
    path: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    width: int = DEFAULT_WIDTH,
) -> CID:
    """The UnixFS root CID of a file on disk, like ``ipfs add --only-hash``.

    Reads straight into one reusable ``chunk_size`` buffer (unbuffered file, no copies).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    builder = FileBuilder(width)
    buffer = memoryview(bytearray(chunk_size))
    with open(path, "rb", buffering=0) as file:
        while True:
            filled = 0
            while filled < chunk_size:
                count = file.readinto(buffer[filled:])
                if not count:
                    break
                filled += count
            if filled or builder.leaf_count == 0:
                chunk = buffer[:filled]
                builder.add_leaf(CID.raw_sha256(hashlib.sha256(chunk).digest()), filled)
            if filled < chunk_size:
                return builder.finish().cid


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_WIDTH",
    "BuilderStatistics",
    "FileBuilder",
    "FileHasher",
    "FileRoot",
    "cid_of_stream",
    "file_cid",
]
