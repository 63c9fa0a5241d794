"""MST nodes: immutable values with their encoding and CID cached.

A node is the DAG-CBOR map ``{"l": CID|null, "e": [{"p", "k", "v", "t"}, ...]}``. In memory
a ``Node`` keeps FULL keys (``Entry.key``); prefix compression (``p`` = bytes shared with the
previous entry's key, ``k`` = the rest) exists only in the encoding. ``left`` is the subtree
before the first entry and each entry's ``right`` the subtree after it, so a node with n
entries has n + 1 subtree slots ("gaps"): gap 0 is ``left``, gap i is ``entries[i-1].right``.

``decode_node`` accepts only what ``Node.to_bytes`` would produce: the codec rejects
non-canonical CBOR, and this module rejects unknown or missing fields, keys out of order or
repeated, a ``p`` that is not the maximal shared prefix, and entries from different layers.
Because the accepted bytes are exactly the canonical encoding, a decoded node keeps the
bytes it came from as its encoding (no re-encode) and its CID is the CID it was fetched by.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any, NamedTuple

from relay.ipld import dagcbor
from relay.ipld.cid import CID
from relay.ipld.dagcbor import write_head
from relay.mst.layer import common_prefix_length, key_layer


class MalformedNode(ValueError):
    """Bytes that are not a canonical MST node."""


class MissingBlock(LookupError):
    """A node loader does not have this node (yet): fetch it and call again."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"MST node {cid} is not available")
        self.cid = cid


class Entry(NamedTuple):
    """One key of a node: its full key, its value, and the subtree to its right."""

    key: bytes
    value: CID
    right: CID | None


class Node:
    """An immutable MST node. Equality is by CID."""

    __slots__ = ("_bytes", "_cid", "entries", "keys", "left")

    left: CID | None
    entries: tuple[Entry, ...]
    keys: tuple[bytes, ...]  # the entries' keys, for bisection
    _bytes: bytes | None
    _cid: CID | None

    def __init__(self, left: CID | None, entries: tuple[Entry, ...]) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "left", left)
        setattr_(self, "entries", entries)
        setattr_(self, "keys", tuple([entry[0] for entry in entries]))
        setattr_(self, "_bytes", None)
        setattr_(self, "_cid", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Node is immutable")

    def to_bytes(self) -> bytes:
        """The canonical DAG-CBOR encoding (computed once)."""
        data = self._bytes
        if data is None:
            data = _encode_node(self.left, self.entries)
            object.__setattr__(self, "_bytes", data)
        return data

    @property
    def cid(self) -> CID:
        """CIDv1, dag-cbor, sha2-256 of ``to_bytes()`` (computed once)."""
        cid = self._cid
        if cid is None:
            cid = CID.dag_cbor_sha256(sha256(self.to_bytes()).digest())
            object.__setattr__(self, "_cid", cid)
        return cid

    def to_ipld(self) -> dict[str, Any]:
        """The IPLD data-model value of the node, keys prefix-compressed."""
        encoded = []
        previous = b""
        for key, value, right in self.entries:
            shared = common_prefix_length(previous, key)
            encoded.append({"p": shared, "k": key[shared:], "v": value, "t": right})
            previous = key
        return {"l": self.left, "e": encoded}

    @property
    def layer(self) -> int | None:
        """The layer of this node's keys; None for an entry-less node (known by position)."""
        return key_layer(self.entries[0].key) if self.entries else None

    def subtree(self, gap: int) -> CID | None:
        """The subtree in gap ``gap``: 0 is ``left``, i is ``entries[i-1].right``."""
        return self.left if gap == 0 else self.entries[gap - 1].right

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.cid == self.cid

    def __hash__(self) -> int:
        return hash(self.cid)

    def __repr__(self) -> str:
        keys = ", ".join(repr(key) for key in self.keys[:4])
        more = ", ..." if len(self.keys) > 4 else ""
        return f"Node(left={self.left!r}, keys=[{keys}{more}])"


# -- encoding ----------------------------------------------------------------------------
# The node has one fixed shape, so it is written directly rather than through the generic
# ``dagcbor.encode`` (which builds a dict per entry and sorts its keys: ~20 µs a node, most
# of the cost of a batch commit). Canonical map order is by encoded length then bytewise:
# "e" < "l" in the node, "k" < "p" < "t" < "v" in an entry. Tests check the bytes against
# ``dagcbor.encode(node.to_ipld())`` and the ``dag-cbor`` package.

_NODE_HEAD_AND_E = b"\xa2\x61e"  # map(2), "e"
_L_NULL = b"\x61l\xf6"
_L_LINK = b"\x61l\xd8\x2a"  # "l", tag 42
_ENTRY_HEAD_AND_K = b"\xa4\x61k"  # map(4), "k"
_P = b"\x61p"
_T_NULL = b"\x61t\xf6"
_T_LINK = b"\x61t\xd8\x2a"
_V_LINK = b"\x61v\xd8\x2a"


# Heads for the values nearly every node has, looked up instead of computed.
_BYTES_HEADS = [bytes((0x40 | n,)) for n in range(24)] + [bytes((0x58, n)) for n in range(24, 256)]
_UINT_HEADS = [bytes((n,)) for n in range(24)] + [bytes((0x18, n)) for n in range(24, 256)]
_CID36_HEAD = b"\x58\x25\x00"  # bytes(37): 0x00 then a 36-byte CIDv1 sha2-256


def _link(out: bytearray, cid: CID) -> None:
    binary = cid.bytes
    if len(binary) == 36:
        out += _CID36_HEAD
    else:
        write_head(out, 0x40, len(binary) + 1)
        out.append(0)
    out += binary


def _encode_node(left: CID | None, entries: tuple[Entry, ...]) -> bytes:
    out = bytearray(_NODE_HEAD_AND_E)
    write_head(out, 0x80, len(entries))
    previous = b""
    for key, value, right in entries:
        shared = common_prefix_length(previous, key)
        previous = key
        suffix = key[shared:]
        out += _ENTRY_HEAD_AND_K
        if len(suffix) < 256:
            out += _BYTES_HEADS[len(suffix)]
        else:
            write_head(out, 0x40, len(suffix))
        out += suffix
        out += _P
        if shared < 256:
            out += _UINT_HEADS[shared]
        else:
            write_head(out, 0x00, shared)
        if right is None:
            out += _T_NULL
        else:
            out += _T_LINK
            _link(out, right)
        out += _V_LINK
        _link(out, value)
    if left is None:
        out += _L_NULL
    else:
        out += _L_LINK
        _link(out, left)
    return bytes(out)


EMPTY_NODE = Node(None, ())
"""The empty tree: ``{"l": null, "e": []}``."""

_NODE_FIELDS = frozenset({"l", "e"})
_ENTRY_FIELDS = frozenset({"p", "k", "v", "t"})


def decode_node(data: bytes) -> Node:
    """Decode and validate a node; raise ``MalformedNode`` unless it is canonical."""
    data = bytes(data)
    try:
        value = dagcbor.decode(data)
    except ValueError as exc:
        raise MalformedNode(f"not canonical DAG-CBOR: {exc}") from exc
    if type(value) is not dict or value.keys() != _NODE_FIELDS:
        raise MalformedNode('a node is a map of exactly "l" and "e"')
    left = value["l"]
    raw_entries = value["e"]
    if left is not None and type(left) is not CID:
        raise MalformedNode('"l" must be a CID or null')
    if type(raw_entries) is not list:
        raise MalformedNode('"e" must be a list')
    entries = []
    previous = b""
    layer = -1
    for index, raw in enumerate(raw_entries):
        if type(raw) is not dict or raw.keys() != _ENTRY_FIELDS:
            raise MalformedNode('an entry is a map of exactly "p", "k", "v" and "t"')
        shared, suffix, entry_value, right = raw["p"], raw["k"], raw["v"], raw["t"]
        if type(shared) is not int or type(suffix) is not bytes:
            raise MalformedNode('"p" must be an integer and "k" a byte string')
        if type(entry_value) is not CID or (right is not None and type(right) is not CID):
            raise MalformedNode('"v" must be a CID and "t" a CID or null')
        if shared > len(previous) or shared < 0:
            raise MalformedNode(f"entry {index}: prefix {shared} is longer than the previous key")
        key = previous[:shared] + suffix
        if index:
            if key <= previous:
                raise MalformedNode(f"entry {index}: keys out of order or repeated")
            if common_prefix_length(previous, key) != shared:
                raise MalformedNode(f"entry {index}: prefix length {shared} is not maximal")
            if key_layer(key) != layer:
                raise MalformedNode(f"entry {index}: keys from different layers in one node")
        else:
            if shared != 0:
                raise MalformedNode("the first entry's prefix length must be 0")
            layer = key_layer(key)
        entries.append(Entry(key, entry_value, right))
        previous = key
    node = Node(left, tuple(entries))
    object.__setattr__(node, "_bytes", data)  # canonical: the decoder accepted nothing else
    return node
