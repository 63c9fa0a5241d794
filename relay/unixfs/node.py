"""dag-pb UnixFS file nodes: the interior nodes of a file DAG, encoded and decoded by hand.

A file node is a PBNode whose links point at the children (raw leaves or other file nodes)
and whose Data is a UnixFS protobuf saying "File", the total file size below the node and
the content size under each link. The bytes must be exactly those that
ipfs-unixfs-importer / @ipld/unixfs write (the ``unixfs-v1-2025`` profile), or the CIDs
differ from everyone else's:

    PBNode   = PBLink* (field 2, written first, in order) · Data (field 1, last)
    PBLink   = Hash (field 1, binary CID) · Name (field 2, written even when empty:
               ``12 00``) · Tsize (field 3, the serialized size of the whole subtree)
    UnixFS   = Type (field 1) = 2 (File) · filesize (field 3) · blocksizes (field 4),
               one unpacked varint field per link

The protobuf is tiny, so it is written here rather than generated. Decoding is strict: it
accepts only nodes relay itself could have written (anything else is ``MalformedNode``),
and as a last check re-encodes the parsed node and compares the bytes, which rules out
every non-canonical form (non-minimal varints, duplicated or reordered fields) at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from relay.ipld.block import Block
from relay.ipld.cid import CID, DAG_PB, RAW, CIDError
from relay.ipld.varint import VarintError, decode_varint, encode_varint

# UnixFS Data.Type values (unixfs.proto); relay writes File nodes only.
UNIXFS_FILE: Final = 2

# Protobuf keys: (field number << 3) | wire type (0 = varint, 2 = length-delimited).
_PBNODE_DATA: Final = 0x0A  # field 1, bytes
_PBNODE_LINK: Final = 0x12  # field 2, bytes
_PBLINK_HASH: Final = 0x0A  # field 1, bytes
_PBLINK_NAME: Final = 0x12  # field 2, bytes
_PBLINK_TSIZE: Final = 0x18  # field 3, varint
_UNIXFS_TYPE: Final = 0x08  # field 1, varint
_UNIXFS_DATA: Final = 0x12  # field 2, bytes (file content inline; relay never writes it)
_UNIXFS_FILESIZE: Final = 0x18  # field 3, varint
_UNIXFS_BLOCKSIZE: Final = 0x20  # field 4, varint (unpacked)
_UNIXFS_BLOCKSIZES_PACKED: Final = 0x22  # field 4, bytes (packed form, which relay rejects)

_EMPTY_NAME: Final = b"\x12\x00"
_TYPE_FILE: Final = bytes((_UNIXFS_TYPE, UNIXFS_FILE))


class MalformedNode(ValueError):
    """Bytes that are not a UnixFS file node relay could have written."""


@dataclass(frozen=True, slots=True)
class Link:
    """A child of a file node: its CID, the file bytes below it and its subtree's Tsize.

    For a raw leaf ``data_size == tsize == len(leaf)``; for a file node ``data_size`` is
    its filesize and ``tsize`` is ``len(node bytes) + sum(children's tsize)``.
    """

    cid: CID
    data_size: int
    tsize: int


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded file node: its links (with blocksizes as ``data_size``) and filesize."""

    links: tuple[Link, ...]
    filesize: int

    @property
    def blocksizes(self) -> tuple[int, ...]:
        return tuple(link.data_size for link in self.links)


def _length_prefixed(key: int, payload: bytes) -> bytes:
    return bytes((key,)) + encode_varint(len(payload)) + payload


def encode_file_node(links: Sequence[Link], filesize: int) -> Block:
    """Encode a UnixFS file node over ``links`` and name it (CIDv1, dag-pb, sha2-256).

    ``filesize`` must be the sum of the links' data sizes: relay's interior nodes carry no
    inline data, so the two are the same number and a mismatch is a caller's bug.
    """
    if not links:
        raise ValueError("a file node needs at least one link")
    if filesize != sum(link.data_size for link in links):
        raise ValueError("filesize must equal the sum of the links' data sizes")
    parts: list[bytes] = []
    unixfs: list[bytes] = [_TYPE_FILE, bytes((_UNIXFS_FILESIZE,)), encode_varint(filesize)]
    for link in links:
        cid = link.cid.bytes
        body = (
            bytes((_PBLINK_HASH,))
            + encode_varint(len(cid))
            + cid
            + _EMPTY_NAME
            + bytes((_PBLINK_TSIZE,))
            + encode_varint(link.tsize)
        )
        parts.append(_length_prefixed(_PBNODE_LINK, body))
        unixfs.append(bytes((_UNIXFS_BLOCKSIZE,)))
        unixfs.append(encode_varint(link.data_size))
    parts.append(_length_prefixed(_PBNODE_DATA, b"".join(unixfs)))
    data = b"".join(parts)
    return Block(CID.dag_pb_sha256(hashlib.sha256(data).digest()), data)


def decode_file_node(data: bytes) -> FileNode:
    """Decode a file node, refusing anything relay could not have written (``MalformedNode``)."""
    try:
        node = _decode(data)
    except (VarintError, CIDError) as exc:
        raise MalformedNode(f"not a file node: {exc}") from exc
    if encode_file_node(node.links, node.filesize).data != data:
        raise MalformedNode("file node is not in canonical form")
    return node


def _read_bytes(data: bytes, offset: int, what: str) -> tuple[bytes, int]:
    length, offset = decode_varint(data, offset)
    end = offset + length
    if end > len(data):
        raise MalformedNode(f"truncated {what}")
    return data[offset:end], end


def _decode(data: bytes) -> FileNode:
    cids: list[CID] = []
    tsizes: list[int] = []
    unixfs: bytes | None = None
    offset = 0
    while offset < len(data):
        key = data[offset]
        offset += 1
        if key == _PBNODE_LINK:
            if unixfs is not None:
                raise MalformedNode("PBNode links must come before Data")
            body, offset = _read_bytes(data, offset, "PBLink")
            cid, tsize = _decode_link(body)
            cids.append(cid)
            tsizes.append(tsize)
        elif key == _PBNODE_DATA:
            if unixfs is not None:
                raise MalformedNode("PBNode has Data twice")
            unixfs, offset = _read_bytes(data, offset, "PBNode Data")
        else:
            raise MalformedNode(f"unexpected PBNode field key 0x{key:02x}")
    if unixfs is None:
        raise MalformedNode("PBNode has no Data")
    if not cids:
        raise MalformedNode("a file node needs at least one link")
    filesize, blocksizes = _decode_unixfs(unixfs)
    if len(blocksizes) != len(cids):
        raise MalformedNode(f"{len(blocksizes)} blocksizes for {len(cids)} links")
    if sum(blocksizes) != filesize:
        raise MalformedNode("blocksizes do not add up to filesize")
    links = tuple(map(Link, cids, blocksizes, tsizes))
    for link in links:
        if link.data_size == 0:
            raise MalformedNode("a file node never links to an empty subtree")
        if link.cid.codec == RAW and link.tsize != link.data_size:
            raise MalformedNode("a raw leaf's Tsize must equal its blocksize")
    return FileNode(links, filesize)


def _decode_link(body: bytes) -> tuple[CID, int]:
    if not body or body[0] != _PBLINK_HASH:
        raise MalformedNode("PBLink must start with Hash")
    binary, offset = _read_bytes(body, 1, "PBLink Hash")
    cid = CID.from_bytes(binary)
    if cid.version != 1 or cid.codec not in (RAW, DAG_PB):
        raise MalformedNode("a file node links to CIDv1 raw or dag-pb blocks only")
    if body[offset : offset + 2] != _EMPTY_NAME:
        raise MalformedNode("PBLink must have an empty Name, written")
    offset += 2
    if body[offset : offset + 1] != bytes((_PBLINK_TSIZE,)):
        raise MalformedNode("PBLink must end with Tsize")
    tsize, offset = decode_varint(body, offset + 1)
    if offset != len(body):
        raise MalformedNode("unexpected fields after PBLink Tsize")
    return cid, tsize


def _decode_unixfs(unixfs: bytes) -> tuple[int, list[int]]:
    if unixfs[:1] != bytes((_UNIXFS_TYPE,)):
        raise MalformedNode("UnixFS Data must start with Type")
    unixfs_type, offset = decode_varint(unixfs, 1)
    if unixfs_type != UNIXFS_FILE:
        raise MalformedNode(f"UnixFS type {unixfs_type} is not File ({UNIXFS_FILE})")
    if unixfs[offset : offset + 1] != bytes((_UNIXFS_FILESIZE,)):
        raise MalformedNode("UnixFS File must have filesize right after Type")
    filesize, offset = decode_varint(unixfs, offset + 1)
    blocksizes: list[int] = []
    while offset < len(unixfs):
        key = unixfs[offset]
        if key == _UNIXFS_BLOCKSIZE:
            size, offset = decode_varint(unixfs, offset + 1)
            blocksizes.append(size)
        elif key == _UNIXFS_BLOCKSIZES_PACKED:
            raise MalformedNode("blocksizes must be unpacked (one varint field each)")
        elif key == _UNIXFS_DATA:
            raise MalformedNode("relay's file nodes carry no inline data")
        else:
            raise MalformedNode(f"unexpected UnixFS field key 0x{key:02x}")
    return filesize, blocksizes
