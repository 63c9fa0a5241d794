"""Slow, obviously-correct references the MST tests compare relay.mst against.

Nothing here imports relay.mst. The tree builder follows the definition literally (the keys
of the top layer split the range; each gap is built one layer down; a gap holding only
lower keys is an entry-less node), hashes layers bit by bit, and encodes with the
``dag-cbor`` package and ``multiformats.CID``, not relay's codec. Also here: a store that
counts loads and raises MissingBlock, and the hypothesis strategies the tests share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import dag_cbor
from hypothesis import strategies as st
from multiformats import CID as ReferenceCID
from multiformats import multihash

from relay.ipld.cid import CID


def reference_layer(key: bytes) -> int:
    bits = "".join(f"{byte:08b}" for byte in hashlib.sha256(key).digest())
    return (len(bits) - len(bits.lstrip("0"))) // 2


def reference_prefix(left: bytes, right: bytes) -> int:
    count = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        count += 1
    return count


def reference_cid(data: bytes) -> ReferenceCID:
    return ReferenceCID("base32", 1, "dag-cbor", multihash.digest(data, "sha2-256"))


def to_reference_cid(cid: CID) -> ReferenceCID:
    return ReferenceCID.decode(cid.bytes)


def reference_node_bytes(
    left: ReferenceCID | None, entries: list[tuple[bytes, ReferenceCID, ReferenceCID | None]]
) -> bytes:
    encoded = []
    previous = b""
    for key, value, right in entries:
        shared = reference_prefix(previous, key)
        encoded.append({"p": shared, "k": key[shared:], "v": value, "t": right})
        previous = key
    return bytes(dag_cbor.encode({"l": left, "e": encoded}))


def reference_root(items: dict[bytes, CID]) -> str:
    """The root CID (as a string) of the canonical MST holding ``items``."""
    blocks: dict[str, bytes] = {}

    def subtree(keys: list[bytes], layer: int) -> ReferenceCID | None:
        if not keys:
            return None
        here = [key for key in keys if layer_of[key] == layer]
        gaps: list[list[bytes]] = [[]]
        for key in keys:
            if layer_of[key] == layer:
                gaps.append([])
            else:
                gaps[-1].append(key)
        children = [subtree(gap, layer - 1) for gap in gaps]
        entries = [
            (key, to_reference_cid(items[key]), child)
            for key, child in zip(here, children[1:], strict=True)
        ]
        data = reference_node_bytes(children[0], entries)
        cid = reference_cid(data)
        blocks[str(cid)] = data
        return cid

    if not items:
        return str(reference_cid(reference_node_bytes(None, [])))
    keys = sorted(items)
    layer_of = {key: reference_layer(key) for key in keys}
    root = subtree(keys, max(layer_of.values()))
    return str(root)


def reference_diff(
    old: dict[bytes, CID], new: dict[bytes, CID]
) -> list[tuple[bytes, CID | None, CID | None]]:
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def value_cid(label: int) -> CID:
    return CID.dag_cbor_sha256(hashlib.sha256(b"value %d" % label).digest())


VALUES = [value_cid(label) for label in range(3)]


def _pool() -> list[bytes]:
    """Keys that share prefixes, are prefixes of each other, hold NUL/0xff bytes, and are
    skewed to high layers (quotas per layer) so that small random trees are several layers
    deep and random deletes often hit keys whose removal merges subtrees."""
    quota = {0: 40, 1: 24, 2: 14, 3: 8, 4: 3}
    chosen = [b"", b"a", b"ab", b"abc", b"a\x00", b"\xff", b"\x00\xff"]
    for number in range(20_000):
        for key in (b"photos/%d" % number, b"photos/%d/img" % number):
            layer = reference_layer(key)
            if quota.get(layer, 0) > 0:
                quota[layer] -= 1
                chosen.append(key)
    return sorted(set(chosen))


KEY_POOL = _pool()

keys = st.one_of(st.sampled_from(KEY_POOL), st.sampled_from(KEY_POOL), st.binary(max_size=5))
values = st.sampled_from(VALUES)
mutations = st.lists(st.tuples(keys, st.one_of(st.none(), values, values)), max_size=40)
trees = st.dictionaries(keys, values, max_size=80)


def apply_reference(state: dict[bytes, CID], batch: Iterable[tuple[bytes, CID | None]]) -> None:
    for key, value in batch:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
