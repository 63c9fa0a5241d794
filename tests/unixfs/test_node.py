"""dag-pb UnixFS file nodes: exact bytes, round trips, and every malformed form refused."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unixfs_reference import dag_pb_file_node, pb_field, pb_fields, pb_varint

import relay.unixfs
from relay.ipld.cid import CID
from relay.unixfs import Link, MalformedNode, decode_file_node, encode_file_node

RAW_CID = CID.raw_sha256(hashlib.sha256(b"leaf").digest())
PB_CID = CID.dag_pb_sha256(hashlib.sha256(b"node").digest())


def cids() -> st.SearchStrategy[CID]:
    digests = st.binary(min_size=32, max_size=32)
    return st.one_of(digests.map(CID.raw_sha256), digests.map(CID.dag_pb_sha256))


@st.composite
def links(draw: st.DrawFn) -> Link:
    cid = draw(cids())
    data_size = draw(st.integers(1, 2**40))
    if cid == CID.raw_sha256(cid.multihash[2:]):
        return Link(cid, data_size, data_size)
    return Link(cid, data_size, data_size + draw(st.integers(1, 2**20)))


@given(st.lists(links(), min_size=1, max_size=20))
def test_encoding_matches_the_spec_writer_and_round_trips(node_links: list[Link]) -> None:
    filesize = sum(link.data_size for link in node_links)
    block = encode_file_node(node_links, filesize)
    expected = dag_pb_file_node(
        [(link.cid.bytes, link.tsize, link.data_size) for link in node_links], filesize
    )
    assert block.data == expected
    assert block.cid == CID.dag_pb_sha256(hashlib.sha256(expected).digest())
    decoded = decode_file_node(block.data)
    assert decoded.links == tuple(node_links)
    assert decoded.filesize == filesize
    assert decoded.blocksizes == tuple(link.data_size for link in node_links)


def test_empty_link_name_is_written() -> None:
    data = encode_file_node([Link(RAW_CID, 5, 5)], 5).data
    [(number, link), _] = pb_fields(data)
    assert number == 2
    assert link == b"\x0a\x24" + RAW_CID.bytes + b"\x12\x00\x18\x05"


def test_encoder_refuses_what_it_would_not_write() -> None:
    with pytest.raises(ValueError, match="at least one link"):
        encode_file_node([], 0)
    with pytest.raises(ValueError, match="sum"):
        encode_file_node([Link(RAW_CID, 5, 5)], 6)


def _node(*links: tuple[bytes, int, int], filesize: int | None = None) -> bytes:
    size = sum(blocksize for _, _, blocksize in links) if filesize is None else filesize
    return dag_pb_file_node(list(links), size)


GOOD = _node((RAW_CID.bytes, 7, 7), (PB_CID.bytes, 120, 100))
GOOD_UNIXFS = pb_field(1, 2) + pb_field(3, 107) + pb_field(4, 7) + pb_field(4, 100)
LINKS = b"".join(
    pb_field(2, pb_field(1, cid) + pb_field(2, b"") + pb_field(3, tsize))
    for cid, tsize in ((RAW_CID.bytes, 7), (PB_CID.bytes, 120))
)


def _link(*fields: bytes) -> bytes:
    return pb_field(2, b"".join(fields))


MALFORMED = {
    "data before links": pb_field(1, GOOD_UNIXFS) + LINKS,
    "data between links": _link(pb_field(1, RAW_CID.bytes), pb_field(2, b""), pb_field(3, 7))
    + pb_field(1, GOOD_UNIXFS)
    + _link(pb_field(1, PB_CID.bytes), pb_field(2, b""), pb_field(3, 120)),
    "data twice": LINKS + pb_field(1, GOOD_UNIXFS) + pb_field(1, GOOD_UNIXFS),
    "no data": LINKS,
    "no links": pb_field(1, pb_field(1, 2) + pb_field(3, 0)),
    "packed blocksizes": LINKS
    + pb_field(1, pb_field(1, 2) + pb_field(3, 107) + pb_field(4, pb_varint(7) + pb_varint(100))),
    "raw type": LINKS + pb_field(1, pb_field(1, 0) + GOOD_UNIXFS[2:]),
    "directory type": LINKS + pb_field(1, pb_field(1, 1) + GOOD_UNIXFS[2:]),
    "metadata type": LINKS + pb_field(1, pb_field(1, 3) + GOOD_UNIXFS[2:]),
    "symlink type": LINKS + pb_field(1, pb_field(1, 4) + GOOD_UNIXFS[2:]),
    "hamt type": LINKS + pb_field(1, pb_field(1, 5) + GOOD_UNIXFS[2:]),
    "fewer blocksizes than links": LINKS
    + pb_field(1, pb_field(1, 2) + pb_field(3, 7) + pb_field(4, 7)),
    "more blocksizes than links": LINKS + pb_field(1, GOOD_UNIXFS + pb_field(4, 1)),
    "blocksizes do not sum to filesize": _node(
        (RAW_CID.bytes, 7, 7), (PB_CID.bytes, 120, 100), filesize=108
    ),
    "no filesize": LINKS + pb_field(1, pb_field(1, 2) + pb_field(4, 7) + pb_field(4, 100)),
    "no type": LINKS + pb_field(1, GOOD_UNIXFS[2:]),
    "inline data": LINKS + pb_field(1, GOOD_UNIXFS + pb_field(2, b"x")),
    "mtime": LINKS + pb_field(1, GOOD_UNIXFS + pb_field(8, pb_field(1, 1))),
    "mode": LINKS + pb_field(1, GOOD_UNIXFS + pb_field(7, 0o644)),
    "name omitted": _link(pb_field(1, RAW_CID.bytes), pb_field(3, 7))
    + pb_field(1, pb_field(1, 2) + pb_field(3, 7) + pb_field(4, 7)),
    "non-empty name": _link(pb_field(1, RAW_CID.bytes), pb_field(2, b"a"), pb_field(3, 7))
    + pb_field(1, pb_field(1, 2) + pb_field(3, 7) + pb_field(4, 7)),
    "tsize omitted": _link(pb_field(1, RAW_CID.bytes), pb_field(2, b""))
    + pb_field(1, pb_field(1, 2) + pb_field(3, 7) + pb_field(4, 7)),
    "link fields reordered": _link(pb_field(2, b""), pb_field(1, RAW_CID.bytes), pb_field(3, 7))
    + pb_field(1, pb_field(1, 2) + pb_field(3, 7) + pb_field(4, 7)),
    "raw leaf tsize differs from blocksize": _node((RAW_CID.bytes, 8, 7)),
    "empty child": _node((RAW_CID.bytes, 7, 7), (PB_CID.bytes, 50, 0)),
    "link to dag-cbor": _node(
        (CID.dag_cbor_sha256(hashlib.sha256(b"x").digest()).bytes, 7, 7),
    ),
    "link to CIDv0": _node((PB_CID.bytes[2:], 120, 100)),
    "link hash not a CID": _node((b"\x01\x55\x12\x20abc", 7, 7)),
    "non-minimal varint": _link(pb_field(1, RAW_CID.bytes), pb_field(2, b""), b"\x18\x87\x00")
    + pb_field(1, pb_field(1, 2) + pb_field(3, 7) + pb_field(4, 7)),
    "truncated": GOOD[:-3],
    "trailing byte": GOOD + b"\x00",
    "unknown pbnode field": GOOD + pb_field(3, 1),
}


# The reason each form is refused, so a case cannot pass by tripping over something else.
REASONS = {
    "data before links": "before Data",
    "data between links": "before Data",
    "data twice": "Data twice",
    "no data": "no Data",
    "no links": "at least one link",
    "packed blocksizes": "unpacked",
    "raw type": "not File",
    "directory type": "not File",
    "metadata type": "not File",
    "symlink type": "not File",
    "hamt type": "not File",
    "fewer blocksizes than links": "1 blocksizes for 2 links",
    "more blocksizes than links": "3 blocksizes for 2 links",
    "blocksizes do not sum to filesize": "add up",
    "no filesize": "filesize",
    "no type": "start with Type",
    "inline data": "inline data",
    "mtime": "0x42",
    "mode": "0x38",
    "name omitted": "empty Name",
    "non-empty name": "empty Name",
    "tsize omitted": "Tsize",
    "link fields reordered": "start with Hash",
    "raw leaf tsize differs from blocksize": "raw leaf's Tsize",
    "empty child": "empty subtree",
    "link to dag-cbor": "raw or dag-pb",
    "link to CIDv0": "raw or dag-pb",
    "link hash not a CID": "invalid CID",
    "non-minimal varint": "minimal",
    "truncated": "truncated",
    "trailing byte": "0x00",
    "unknown pbnode field": "0x18",
}


def test_the_valid_base_case_decodes() -> None:
    node = decode_file_node(GOOD)
    assert node.filesize == 107
    assert node.links == (Link(RAW_CID, 7, 7), Link(PB_CID, 100, 120))
    assert LINKS + pb_field(1, GOOD_UNIXFS) == GOOD


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_decoder_rejects_a_node_relay_would_not_write(name: str) -> None:
    with pytest.raises(MalformedNode, match=REASONS[name]):
        decode_file_node(MALFORMED[name])


@given(st.binary(max_size=200))
def test_decoder_raises_only_malformed_node_on_garbage(data: bytes) -> None:
    try:
        node = decode_file_node(data)
    except MalformedNode:
        return
    assert encode_file_node(node.links, node.filesize).data == data


@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_any_single_byte_change_is_refused_or_still_canonical(index: int, delta: int) -> None:
    mutated = bytearray(GOOD)
    mutated[index] = (mutated[index] + delta) % 256
    try:
        node = decode_file_node(bytes(mutated))
    except MalformedNode:
        return
    assert encode_file_node(node.links, node.filesize).data == bytes(mutated)


def test_the_package_imports_no_trio() -> None:
    package = Path(relay.unixfs.__file__).parent
    for source in package.glob("*.py"):
        for statement in ast.walk(ast.parse(source.read_text())):
            if isinstance(statement, ast.Import):
                modules = [alias.name for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom):
                modules = [statement.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] != "trio", source.name
                assert not module.startswith("relay.store"), source.name
