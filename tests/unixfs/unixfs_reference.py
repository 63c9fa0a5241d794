"""Slow, obviously-correct references the UnixFS tests compare relay.unixfs against.

Nothing here imports relay.unixfs: the protobuf writer and reader are generic (field
number, wire type), written from the protobuf and dag-pb specs, and the tree builder is
ipfs-unixfs-importer's batch algorithm transcribed literally (group by width, one parent
per group, repeat until one node remains).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from relay.ipld.cid import CID

VARINT = 0
LENGTH_DELIMITED = 2


def pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return pb_varint(number << 3 | VARINT) + pb_varint(value)
    return pb_varint(number << 3 | LENGTH_DELIMITED) + pb_varint(len(value)) + value


def pb_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Decode a protobuf message into ``(field number, value)`` pairs, in wire order."""
    fields: list[tuple[int, int | bytes]] = []
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while position < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            fields.append((number, varint()))
        elif wire_type == LENGTH_DELIMITED:
            length = varint()
            fields.append((number, data[position : position + length]))
            position += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    return fields


def dag_pb_file_node(
    links: list[tuple[bytes, int, int]],
    filesize: int,
    *,
    name: bytes | None = b"",
    unixfs_type: int = 2,
) -> bytes:
    """A dag-pb file node from ``(cid bytes, tsize, blocksize)`` triples, per the spec."""
    unixfs = pb_field(1, unixfs_type) + pb_field(3, filesize)
    for _, _, blocksize in links:
        unixfs += pb_field(4, blocksize)
    node = b""
    for cid, tsize, _ in links:
        link = pb_field(1, cid)
        if name is not None:
            link += pb_field(2, name)
        link += pb_field(3, tsize)
        node += pb_field(2, link)
    return node + pb_field(1, unixfs)


@dataclass
class RefNode:
    """A node of the reference tree: a leaf (``data is None``) or an interior node."""

    cid: CID
    size: int
    tsize: int
    start: int
    data: bytes | None = None
    children: list[RefNode] = field(default_factory=list)


def _parent(children: list[RefNode]) -> RefNode:
    data = dag_pb_file_node(
        [(child.cid.bytes, child.tsize, child.size) for child in children],
        sum(child.size for child in children),
    )
    cid = CID.dag_pb_sha256(hashlib.sha256(data).digest())
    tsize = len(data) + sum(child.tsize for child in children)
    size = sum(child.size for child in children)
    return RefNode(cid, size, tsize, children[0].start, data, children)


def batch_tree(leaves: list[tuple[CID, int]], width: int) -> tuple[RefNode, int]:
    """The balanced tree over ``leaves`` and its depth (levels of nodes above the leaves)."""
    level: list[RefNode] = []
    start = 0
    for cid, size in leaves:
        level.append(RefNode(cid, size, size, start))
        start += size
    depth = 0
    while len(level) > 1:
        level = [_parent(level[i : i + width]) for i in range(0, len(level), width)]
        depth += 1
    return level[0], depth


def interior_nodes(root: RefNode) -> Iterator[RefNode]:
    if root.data is not None:
        yield root
        for child in root.children:
            yield from interior_nodes(child)


def fake_leaves(sizes: list[int]) -> list[tuple[CID, int]]:
    """Distinct raw-leaf CIDs without the leaves' bytes (the builder never needs them)."""
    return [
        (CID.raw_sha256(hashlib.sha256(struct.pack(">Q", index)).digest()), size)
        for index, size in enumerate(sizes)
    ]


def sha256_counter(seed: bytes, size: int, piece_size: int = 1 << 16) -> Iterator[bytes]:
    """The vectors' ``sha256-counter`` file: SHA256(seed || u64be(i)) for i = 0, 1, ...

    Yields ``piece_size``-byte pieces (``piece_size`` a multiple of 32).
    """
    pack = struct.Struct(">Q").pack
    sha256 = hashlib.sha256
    per_piece = piece_size // 32
    counter = 0
    remaining = size
    while remaining > 0:
        piece = b"".join(
            [sha256(seed + pack(i)).digest() for i in range(counter, counter + per_piece)]
        )
        counter += per_piece
        piece = piece[:remaining]
        remaining -= len(piece)
        yield piece


def mod251(size: int, piece_size: int = 251 * 256) -> Iterator[bytes]:
    """The vectors' ``mod251`` file: byte i is i % 251 (pieces are whole periods)."""
    period = bytes(range(251)) * (piece_size // 251)
    remaining = size
    while remaining > 0:
        piece = period[:remaining]
        remaining -= len(piece)
        yield piece
