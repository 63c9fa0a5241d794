"""leaves_for_range: the spans it names are exactly the requested slice of the file."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unixfs_reference import RefNode, batch_tree

from relay.ipld.cid import CID
from relay.unixfs import (
    FileBuilder,
    FileNode,
    LeafSpan,
    Link,
    MalformedNode,
    decode_file_node,
    encode_file_node,
    leaves_for_range,
)


@dataclass
class StoredFile:
    data: bytes
    root: CID
    blocks: dict[CID, bytes] = field(default_factory=dict)
    leaves: dict[CID, bytes] = field(default_factory=dict)
    loaded: list[CID] = field(default_factory=list)

    def load(self, cid: CID) -> FileNode:
        self.loaded.append(cid)
        return decode_file_node(self.blocks[cid])


def store_file(data: bytes, chunk_size: int, width: int) -> StoredFile:
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    builder = FileBuilder(width)
    stored = StoredFile(data, CID(b""))
    for piece in pieces:
        cid = CID.raw_sha256(hashlib.sha256(piece).digest())
        stored.leaves[cid] = piece
        for block in builder.add_leaf(cid, len(piece)):
            stored.blocks[block.cid] = block.data
    root = builder.finish()
    stored.blocks.update((block.cid, block.data) for block in root.blocks)
    stored.root = root.cid
    return stored


def read(stored: StoredFile, spans: list[LeafSpan]) -> bytes:
    out = b""
    for span in spans:
        leaf = stored.leaves[span.cid]
        assert span.size == len(leaf)
        assert span.take > 0
        assert span.skip >= 0
        assert span.skip + span.take <= span.size
        out += leaf[span.skip : span.skip + span.take]
    return out


def overlapping_nodes(node: RefNode, start: int, end: int) -> Iterator[CID]:
    """The interior nodes (with repeats, as identical subtrees share a CID) over [start, end)."""
    if start >= end:
        return  # an empty range overlaps nothing
    if node.data is not None and node.start < end and start < node.start + node.size:
        yield node.cid
        for child in node.children:
            yield from overlapping_nodes(child, start, end)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=700),
    chunk_size=st.integers(1, 16),
    width=st.sampled_from([2, 3, 4, 174]),
    offset=st.integers(0, 800),
    length=st.integers(0, 800),
)
def test_spans_reassemble_the_slice(
    data: bytes, chunk_size: int, width: int, offset: int, length: int
) -> None:
    stored = store_file(data, chunk_size, width)
    file_size = len(data) if stored.root.codec == 0x55 else None
    spans = list(leaves_for_range(stored.root, offset, length, stored.load, file_size=file_size))
    assert read(stored, spans) == data[offset : offset + length]

    # Exactly the nodes whose bytes overlap the range are loaded (and the root, always).
    leaves = [
        (CID.raw_sha256(hashlib.sha256(leaf).digest()), len(leaf))
        for leaf in (data[i : i + chunk_size] for i in range(0, len(data), chunk_size))
    ] or [(CID.raw_sha256(hashlib.sha256(b"").digest()), 0)]
    reference, _ = batch_tree(leaves, width)
    end = min(offset + length, len(data))
    expected = Counter(overlapping_nodes(reference, offset, end))
    if reference.data is not None:
        expected[reference.cid] = max(expected[reference.cid], 1)
    assert Counter(stored.loaded) == expected


def test_whole_file_and_tail_of_a_deep_tree() -> None:
    data = bytes(range(256)) * 4
    stored = store_file(data, 10, 2)
    spans = list(leaves_for_range(stored.root, 0, len(data), stored.load))
    assert read(stored, spans) == data
    assert len(spans) == 103
    stored.loaded.clear()
    [span] = leaves_for_range(stored.root, len(data) - 1, 100, stored.load)
    assert stored.leaves[span.cid][span.skip :] == data[-1:]
    # 103 leaves at width 2 is 7 levels of nodes: one load per level for the last byte.
    assert len(stored.loaded) == 7


def test_raw_root_is_one_span_and_needs_the_size() -> None:
    leaf = CID.raw_sha256(hashlib.sha256(b"hello").digest())

    def load(cid: CID) -> FileNode:
        raise AssertionError("a raw root needs no loading")

    assert list(leaves_for_range(leaf, 1, 3, load, file_size=5)) == [LeafSpan(leaf, 5, 1, 3)]
    assert list(leaves_for_range(leaf, 3, 100, load, file_size=5)) == [LeafSpan(leaf, 5, 3, 2)]
    assert list(leaves_for_range(leaf, 5, 1, load, file_size=5)) == []
    assert list(leaves_for_range(leaf, 0, 0, load, file_size=5)) == []
    with pytest.raises(ValueError, match="file_size"):
        leaves_for_range(leaf, 0, 1, load)


def test_bad_arguments_fail_before_any_load() -> None:
    stored = store_file(b"x" * 100, 10, 3)
    with pytest.raises(ValueError, match="negative"):
        leaves_for_range(stored.root, -1, 5, stored.load)
    with pytest.raises(ValueError, match="negative"):
        leaves_for_range(stored.root, 0, -5, stored.load)
    with pytest.raises(MalformedNode, match="codec"):
        leaves_for_range(CID.dag_cbor_sha256(bytes(32)), 0, 5, stored.load)
    assert stored.loaded == []


def test_loader_errors_reach_the_caller() -> None:
    class Missing(Exception):
        pass

    stored = store_file(b"x" * 100, 10, 3)

    def load(cid: CID) -> FileNode:
        if cid != stored.root:
            raise Missing(str(cid))
        return decode_file_node(stored.blocks[cid])

    spans = leaves_for_range(stored.root, 50, 10, load)
    with pytest.raises(Missing):
        list(spans)


def test_root_size_disagreeing_with_the_manifest_is_refused() -> None:
    stored = store_file(b"x" * 100, 10, 3)
    with pytest.raises(MalformedNode, match="expected 99"):
        list(leaves_for_range(stored.root, 0, 5, stored.load, file_size=99))


def test_child_disagreeing_with_its_parents_blocksize_is_refused() -> None:
    leaves = [CID.raw_sha256(hashlib.sha256(bytes([i])).digest()) for i in range(2)]
    child = encode_file_node([Link(leaves[0], 10, 10), Link(leaves[1], 10, 10)], 20)
    # The parent claims the child holds 25 bytes; the child says 20.
    lying = encode_file_node([Link(child.cid, 25, 25 + len(child.data))], 25)
    nodes = {block.cid: decode_file_node(block.data) for block in (child, lying)}
    with pytest.raises(MalformedNode, match="parent says 25"):
        list(leaves_for_range(lying.cid, 0, 25, nodes.__getitem__))
