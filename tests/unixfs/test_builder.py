"""The streaming builder builds the batch algorithm's tree; CIDs of streams and files."""

from __future__ import annotations

import hashlib
import itertools
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unixfs_reference import batch_tree, fake_leaves, interior_nodes

from relay.ipld.block import Block
from relay.ipld.cid import CID
from relay.unixfs import FileBuilder, FileHasher, cid_of_stream, file_cid

WIDTHS = (2, 3, 4, 174)


def boundary_counts(width: int) -> list[int]:
    counts = {1, 2, width - 1, width, width + 1, 2 * width, 2 * width + 1}
    for power in (2, 3, 4):
        edge = width**power
        if edge <= 40_000:
            counts |= {edge - 1, edge, edge + 1}
    return sorted(count for count in counts if count >= 1)


def build_streaming(leaves: list[tuple[CID, int]], width: int) -> tuple[list[Block], FileBuilder]:
    builder = FileBuilder(width)
    emitted: list[Block] = []
    for cid, size in leaves:
        emitted.extend(builder.add_leaf(cid, size))
        stats = builder.statistics()
        # O(width × depth): never more than width - 1 pending links per level.
        assert stats.pending_links <= (width - 1) * stats.levels
    return emitted, builder


@st.composite
def widths_and_counts(draw: st.DrawFn) -> tuple[int, int]:
    width = draw(st.sampled_from(WIDTHS))
    count = draw(st.one_of(st.sampled_from(boundary_counts(width)), st.integers(1, 3 * width)))
    return width, count


def check_against_batch(width: int, sizes: list[int]) -> None:
    leaves = fake_leaves(sizes)
    reference, reference_depth = batch_tree(leaves, width)

    emitted, builder = build_streaming(leaves, width)
    root = builder.finish()

    assert root.cid == reference.cid
    assert root.size == sum(sizes) == reference.size
    assert root.tsize == reference.tsize
    assert root.depth == reference_depth
    assert root.leaf_count == len(sizes)
    expected_blocks = {node.cid: node.data for node in interior_nodes(reference)}
    produced = emitted + root.blocks
    assert len(produced) == len(expected_blocks)
    assert {block.cid: block.data for block in produced} == expected_blocks
    # Only the partial runs, at most one per level, wait until finish().
    assert len(root.blocks) <= root.depth


@settings(max_examples=60, deadline=None)
@given(widths_and_counts(), st.randoms(use_true_random=False))
def test_streaming_builder_builds_the_batch_tree(
    width_and_count: tuple[int, int], random: Random
) -> None:
    width, count = width_and_count
    check_against_batch(width, [random.randint(1, 1 << 20) for _ in range(count)])


@pytest.mark.parametrize(
    ("width", "count"),
    [(width, count) for width in WIDTHS for count in boundary_counts(width)],
)
def test_streaming_builder_builds_the_batch_tree_at_every_boundary(width: int, count: int) -> None:
    check_against_batch(width, [1 << 18] * (count - 1) + [count])


def test_each_full_run_is_handed_out_by_the_leaf_that_completes_it() -> None:
    leaves = fake_leaves([10] * 9)
    builder = FileBuilder(3)
    handed_out = [len(builder.add_leaf(cid, size)) for cid, size in leaves]
    # Leaves 3 and 6 close a run; leaf 9 closes a run and the run of those three parents.
    assert handed_out == [0, 0, 1, 0, 0, 1, 0, 0, 2]
    root = builder.finish()
    assert root.blocks == []
    assert root.depth == 2


def test_one_leaf_is_its_own_root() -> None:
    [(cid, size)] = fake_leaves([1234])
    builder = FileBuilder()
    assert builder.add_leaf(cid, size) == []
    root = builder.finish()
    assert (root.cid, root.size, root.tsize, root.blocks, root.depth) == (cid, 1234, 1234, [], 0)


def test_empty_file_is_the_raw_leaf_of_nothing() -> None:
    empty = CID.raw_sha256(hashlib.sha256(b"").digest())
    assert str(empty) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert cid_of_stream([]) == empty
    assert cid_of_stream([b"", b""]) == empty
    builder = FileBuilder()
    builder.add_leaf(empty, 0)
    assert builder.finish().cid == empty


def test_builder_refuses_misuse() -> None:
    (cid, _), (other, _) = fake_leaves([1, 1])
    with pytest.raises(ValueError, match="width"):
        FileBuilder(1)
    with pytest.raises(ValueError, match="at least one leaf"):
        FileBuilder().finish()
    with pytest.raises(ValueError, match="raw"):
        FileBuilder().add_leaf(CID.dag_pb_sha256(bytes(32)), 5)
    builder = FileBuilder()
    builder.add_leaf(cid, 5)
    with pytest.raises(ValueError, match="empty leaf"):
        builder.add_leaf(other, 0)
    builder = FileBuilder()
    builder.add_leaf(cid, 0)
    with pytest.raises(ValueError, match="empty leaf"):
        builder.add_leaf(other, 5)
    builder = FileBuilder()
    builder.add_leaf(cid, 5)
    builder.finish()
    with pytest.raises(RuntimeError):
        builder.add_leaf(other, 5)
    with pytest.raises(RuntimeError):
        builder.finish()


def _chunked_root(data: bytes, chunk_size: int, width: int) -> CID:
    """The root built leaf by leaf from slices: independent of FileHasher's buffering."""
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    leaves = [(CID.raw_sha256(hashlib.sha256(piece).digest()), len(piece)) for piece in pieces]
    return batch_tree(leaves, width)[0].cid


@settings(max_examples=80, deadline=None)
@given(
    st.binary(max_size=3000),
    st.integers(1, 64),
    st.integers(2, 5),
    st.lists(st.integers(0, 3000), max_size=8),
)
def test_stream_cid_does_not_depend_on_how_the_bytes_are_split(
    data: bytes, chunk_size: int, width: int, cuts: list[int]
) -> None:
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
    pieces = [data[start:end] for start, end in itertools.pairwise(bounds)]
    expected = _chunked_root(data, chunk_size, width)
    assert cid_of_stream(pieces, chunk_size, width) == expected
    assert cid_of_stream([memoryview(bytearray(data))], chunk_size, width) == expected


@pytest.mark.parametrize(
    ("size", "chunk_size", "width"),
    [(0, 16, 2), (1, 16, 2), (16, 16, 2), (17, 16, 2), (1000, 16, 3), (5000, 7, 4)],
)
def test_file_cid_matches_stream_cid(
    tmp_path: Path, size: int, chunk_size: int, width: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "file"
    path.write_bytes(data)
    expected = _chunked_root(data, chunk_size, width)
    assert file_cid(path, chunk_size, width) == expected
    assert cid_of_stream([data], chunk_size, width) == expected


def _odd_pieces(total: int, pattern: memoryview, piece: int) -> Iterator[memoryview]:
    """``total`` bytes as views into one preallocated pattern: allocates nothing per piece."""
    sent = 0
    offset = 0
    while sent < total:
        size = min(piece, total - sent)
        if offset + size > len(pattern):
            offset = 0
        yield pattern[offset : offset + size]
        offset += 7
        sent += size


def test_stream_cid_memory_stays_within_a_chunk_for_256_mib() -> None:
    chunk_size = 1 << 20
    total = 256 << 20
    pattern = memoryview(os.urandom(2 << 20))
    # Pieces not aligned with chunks, so the copy-through-the-buffer path carries them.
    tracemalloc.start()
    try:
        cid = cid_of_stream(_odd_pieces(total, pattern, 100_003), chunk_size, 174)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * chunk_size, f"peak {peak} bytes"
    # The same stream through a plain leaf-by-leaf build (bytes joined per chunk).
    reference = FileBuilder(174)
    pieces = _odd_pieces(total, pattern, 100_003)
    carry = bytearray()
    for piece in pieces:
        carry += piece
        if len(carry) >= chunk_size:
            leaf = bytes(carry[:chunk_size])
            del carry[:chunk_size]
            reference.add_leaf(CID.raw_sha256(hashlib.sha256(leaf).digest()), len(leaf))
    assert not carry
    assert cid == reference.finish().cid


def test_file_hasher_reports_the_tree() -> None:
    hasher = FileHasher(chunk_size=10, width=2)
    hasher.update(b"x" * 45)
    root = hasher.finish()
    assert root.leaf_count == 5
    assert root.depth == 3
    assert root.size == 45
