"""Which bytes of which raw leaves make up a byte range of a file: the read path's map.

Each file node lists its children's content sizes (blocksizes), so a range is resolved by
walking down from the root and loading only the nodes whose byte span overlaps it: for a
balanced tree that is at most two partial nodes per level plus the fully covered ones
between them. The walk is lazy (a generator), so a reader can start fetching the first
leaves before the last interior node of a long range is loaded.

``load`` returns a file node decoded with ``decode_file_node`` from bytes checked against
the CID (the store layer checks every read), so a caller can keep decoded nodes between
ranges; whatever it raises reaches the caller unchanged. The walk still checks that each
child's filesize agrees with the blocksize its parent claims, so a bad node is a
``MalformedNode``, never a silently wrong range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from relay.ipld.cid import CID, DAG_PB, RAW
from relay.unixfs.node import FileNode, MalformedNode

# A width-2 tree of 1-byte leaves 64 levels deep holds 2**64 bytes: deeper is a bad DAG.
MAX_DEPTH: Final = 64

Loader = Callable[[CID], FileNode]


@dataclass(frozen=True, slots=True)
class LeafSpan:
    """Bytes ``leaf[skip : skip + take]`` of the raw leaf ``cid``, which is ``size`` long."""

    cid: CID
    size: int
    skip: int
    take: int


def leaves_for_range(
    root: CID,
    offset: int,
    length: int,
    load: Loader,
    *,
    file_size: int | None = None,
) -> Iterator[LeafSpan]:
    """The leaf spans covering ``file[offset : offset + length]``, in order.

    The range is clipped to the file, like a slice. ``file_size`` (from the manifest) is
    required when the root is a raw leaf, whose size cannot be known without fetching it;
    for a dag-pb root it is optional and, when given, checked against the root node.
    Argument errors raise here; loading and decoding happen as the iterator is consumed.
    """
    if offset < 0 or length < 0:
        raise ValueError("offset and length must not be negative")
    codec = root.codec
    if codec == RAW:
        if file_size is None:
            raise ValueError("a raw-leaf root needs the file_size")
        return _raw_root(root, offset, length, file_size)
    if codec != DAG_PB:
        raise MalformedNode(f"a file root is raw or dag-pb, not codec 0x{codec:x}")
    return _node_root(root, offset, length, load, file_size)


def _raw_root(root: CID, offset: int, length: int, file_size: int) -> Iterator[LeafSpan]:
    end = min(offset + length, file_size)
    if offset < end:
        yield LeafSpan(root, file_size, offset, end - offset)


def _node_root(
    root: CID, offset: int, length: int, load: Loader, file_size: int | None
) -> Iterator[LeafSpan]:
    node = load(root)
    if file_size is not None and node.filesize != file_size:
        raise MalformedNode(f"root says {node.filesize} bytes, expected {file_size}")
    end = min(offset + length, node.filesize)
    if offset < end:
        yield from _walk(node, offset, end, load, 1)


def _walk(node: FileNode, start: int, end: int, load: Loader, depth: int) -> Iterator[LeafSpan]:
    """Spans for ``[start, end)``, positions relative to ``node``'s first byte."""
    position = 0
    for link in node.links:
        if position >= end:
            return
        child_end = position + link.data_size
        if child_end > start:
            skip = max(start, position) - position
            take = min(end, child_end) - position - skip
            if link.cid.codec == RAW:
                yield LeafSpan(link.cid, link.data_size, skip, take)
            else:
                if depth >= MAX_DEPTH:
                    raise MalformedNode(f"file DAG deeper than {MAX_DEPTH} levels")
                child = load(link.cid)
                if child.filesize != link.data_size:
                    raise MalformedNode(
                        f"child holds {child.filesize} bytes, its parent says {link.data_size}"
                    )
                yield from _walk(child, skip, skip + take, load, depth + 1)
        position = child_end
