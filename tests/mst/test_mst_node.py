"""Node encoding (byte for byte against the dag-cbor package) and strict decoding."""

from __future__ import annotations

import hashlib

import dag_cbor
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mst_reference import (
    VALUES,
    reference_cid,
    reference_layer,
    reference_node_bytes,
    to_reference_cid,
)

from relay.ipld import dagcbor
from relay.ipld.cid import CID
from relay.mst import EMPTY_NODE, Entry, MalformedNode, Node, decode_node

LINK = CID.dag_cbor_sha256(hashlib.sha256(b"a subtree").digest())


def keys_of_layer(layer: int, count: int, prefix: bytes = b"photos/2024/") -> list[bytes]:
    found = []
    number = 0
    while len(found) < count:
        key = prefix + b"IMG_%d.jpg" % number
        if reference_layer(key) == layer:
            found.append(key)
        number += 1
    return sorted(found)


def sample_nodes() -> list[Node]:
    layer0 = keys_of_layer(0, 6)
    layer1 = keys_of_layer(1, 3, prefix=b"x")
    return [
        EMPTY_NODE,
        Node(LINK, ()),
        Node(None, (Entry(b"", VALUES[0], None),)),
        Node(None, tuple(Entry(key, VALUES[0], None) for key in layer0)),
        Node(LINK, tuple(Entry(key, VALUES[1], LINK) for key in layer1)),
        Node(
            None,
            tuple(
                Entry(key, VALUES[n % 3], LINK if n % 2 else None) for n, key in enumerate(layer0)
            ),
        ),
        Node(LINK, (Entry(b"a" * 300, VALUES[2], None),)),
    ]


def test_empty_node_has_the_known_empty_tree_cid() -> None:
    assert str(EMPTY_NODE.cid) == "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"


@pytest.mark.parametrize("node", sample_nodes())
def test_node_bytes_match_the_dag_cbor_package(node: Node) -> None:
    expected = reference_node_bytes(
        None if node.left is None else to_reference_cid(node.left),
        [
            (
                e.key,
                to_reference_cid(e.value),
                None if e.right is None else to_reference_cid(e.right),
            )
            for e in node.entries
        ],
    )
    assert node.to_bytes() == expected
    assert node.cid.bytes == bytes(reference_cid(expected))


@pytest.mark.parametrize("node", sample_nodes())
def test_decode_round_trips(node: Node) -> None:
    decoded = decode_node(node.to_bytes())
    assert decoded.left == node.left
    assert decoded.entries == node.entries
    assert decoded.cid == node.cid
    assert decoded.to_bytes() == node.to_bytes()


def test_prefix_compression_stores_only_the_suffix() -> None:
    first, second = keys_of_layer(0, 2)
    raw = dagcbor.decode(
        Node(None, (Entry(first, VALUES[0], None), Entry(second, VALUES[0], None))).to_bytes()
    )
    shared = len(b"photos/2024/IMG_")
    assert raw["e"][0] == {"p": 0, "k": first, "v": VALUES[0], "t": None}
    assert raw["e"][1]["p"] >= shared
    assert first[: raw["e"][1]["p"]] + raw["e"][1]["k"] == second


def encode_raw(left: object, entries: list[dict[str, object]], **extra: object) -> bytes:
    return dagcbor.encode({"l": left, "e": entries, **extra})


def raw_entry(
    p: int, k: bytes, v: object = VALUES[0], t: object = None, **extra: object
) -> dict[str, object]:
    return {"p": p, "k": k, "v": v, "t": t, **extra}


A, B, C = keys_of_layer(0, 3)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode_raw(None, [raw_entry(0, B), raw_entry(0, A)]), "unsorted keys"),
        (encode_raw(None, [raw_entry(0, A), raw_entry(len(A), b"")]), "duplicate key"),
        (encode_raw(None, [raw_entry(0, A), raw_entry(0, B)]), "prefix not maximal"),
        (encode_raw(None, [raw_entry(0, A), raw_entry(len(A) + 1, b"x")]), "prefix too long"),
        (encode_raw(None, [raw_entry(1, A[1:])]), "first prefix not 0"),
        (
            encode_raw(None, [raw_entry(0, A), raw_entry(0, keys_of_layer(1, 1, b"z")[0])]),
            "mixed layers",
        ),
        (encode_raw(None, [], x=1), "unknown node field"),
        (encode_raw(None, [raw_entry(0, A, extra=1)]), "unknown entry field"),
        (dagcbor.encode({"e": []}), "missing l"),
        (dagcbor.encode({"l": None, "e": [{"p": 0, "k": A, "v": VALUES[0]}]}), "missing t"),
        (encode_raw(None, [raw_entry(0, A.decode())]), "k is text"),  # type: ignore[arg-type]
        (encode_raw(None, [raw_entry(0, A, v=b"not a cid")]), "v is not a link"),
        (encode_raw(b"not a cid", []), "l is not a link"),
        (encode_raw(None, [raw_entry(0, A, t=5)]), "t is not a link"),
        (dagcbor.encode([None, []]), "not a map"),
        (b"\xa2\x61l\xf6\x61e\x80", "map keys not in canonical order"),
        (b"\xa2\x61e\x9f\xff\x61l\xf6", "indefinite-length list"),
        (EMPTY_NODE.to_bytes() + b"\x00", "trailing bytes"),
        (encode_raw(None, [raw_entry(0, A)])[:-3], "truncated"),
    ],
)
def test_decode_rejects_non_canonical_nodes(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedNode):
        decode_node(data)


def test_non_minimal_integer_prefix_is_rejected() -> None:
    canonical = encode_raw(None, [raw_entry(0, A)])
    # "p": 0 written as a one-byte argument (0x18 0x00) instead of the immediate 0x00.
    bloated = canonical.replace(b"\x61p\x00", b"\x61p\x18\x00", 1)
    assert bloated != canonical
    decode_node(canonical)
    with pytest.raises(MalformedNode):
        decode_node(bloated)


def test_hand_written_canonical_empty_node_decodes() -> None:
    assert decode_node(b"\xa2\x61e\x80\x61l\xf6").cid == EMPTY_NODE.cid


def test_node_is_immutable() -> None:
    node = Node(None, ())
    with pytest.raises(AttributeError):
        node.left = LINK  # type: ignore[misc]


def test_dag_cbor_package_decodes_what_we_encode() -> None:
    node = sample_nodes()[5]
    decoded = dag_cbor.decode(node.to_bytes())
    rebuilt: list[bytes] = []
    for entry in decoded["e"]:
        previous = rebuilt[-1] if rebuilt else b""
        rebuilt.append(previous[: entry["p"]] + bytes(entry["k"]))
    assert rebuilt == list(node.keys)


@given(
    st.lists(st.binary(max_size=300), max_size=8, unique=True),
    st.lists(st.sampled_from([None, LINK, *VALUES]), min_size=9, max_size=9),
)
def test_node_writer_matches_the_generic_codec(keys: list[bytes], links: list[CID | None]) -> None:
    # The node writer is specialised for speed; the generic encoder of the same value
    # (relay.ipld.dagcbor) must agree byte for byte, whatever the key lengths and links.
    entries = tuple(
        Entry(key, VALUES[index % 3], links[index + 1]) for index, key in enumerate(sorted(keys))
    )
    node = Node(links[0], entries)
    assert node.to_bytes() == dagcbor.encode(node.to_ipld())
