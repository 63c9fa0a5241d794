"""CARv1: the builder, the whole-buffer reader and the incremental decoder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID as ReferenceCID

from relay.ipld import dagcbor, multihash
from relay.ipld.block import Block, cbor_block, raw_block
from relay.ipld.car import (
    END,
    MAX_SECTION_BYTES,
    NEED_DATA,
    CarBlock,
    CarBuilder,
    CarDecoder,
    CarError,
    CarHeader,
    encode_header,
    read_car,
)
from relay.ipld.cid import CID
from relay.ipld.varint import encode_varint

Event = CarHeader | CarBlock


def blake3_block(data: bytes) -> Block:
    digest = multihash.digest_of(multihash.BLAKE3, data)
    return Block(CID.v1(0x55, multihash.wrap_blake3(digest)), data)


def v0_block(data: bytes) -> Block:
    return Block(CID(multihash.sha2_256(data)), data)


blocks = st.one_of(
    st.binary(max_size=300).map(raw_block),
    st.binary(max_size=300).map(blake3_block),
    st.binary(max_size=300).map(v0_block),
    st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63), max_size=4).map(cbor_block),
)


def build(roots: list[CID], car_blocks: list[Block]) -> tuple[bytes, CarBuilder]:
    builder = CarBuilder(roots)
    for block in car_blocks:
        builder.add(block.cid, block.data)
    return builder.to_bytes(), builder


def decode_all(pieces: list[bytes], *, verify: bool = True) -> list[Event]:
    """Feed ``pieces`` one at a time, draining events after each; then end the input."""
    decoder = CarDecoder(verify=verify)
    events: list[Event] = []

    def drain() -> None:
        while True:
            event = decoder.next_event()
            if event is NEED_DATA or event is END:
                return
            assert isinstance(event, CarHeader | CarBlock)
            events.append(event)

    for piece in pieces:
        decoder.feed(piece)
        drain()
    decoder.end_of_input()
    drain()
    assert decoder.next_event() is END
    return events


def read_all(car: bytes) -> list[CarBlock]:
    return list(read_car(car)[1])


@given(st.lists(blocks, max_size=8), st.integers(min_value=0, max_value=2))
def test_builder_output_reads_back_with_its_roots_and_blocks(
    car_blocks: list[Block], root_count: int
) -> None:
    roots = [block.cid for block in car_blocks[:root_count]]
    car, builder = build(roots, car_blocks)
    unique = list({block.cid: block for block in car_blocks}.values())
    header, read = read_car(car)
    assert header.roots == tuple(roots)
    read_blocks = list(read)
    assert [(b.cid, b.data) for b in read_blocks] == [(b.cid, b.data) for b in unique]
    assert len(builder) == len(unique)
    for location, block in zip(builder.locations, read_blocks, strict=True):
        assert location.cid == block.cid
        assert location.offset == block.offset
        assert car[location.offset : location.offset + location.length] == block.data


@given(st.lists(blocks, min_size=1, max_size=5), st.data())
@settings(max_examples=60)
def test_decoder_fed_in_any_pieces_yields_the_same_events(
    car_blocks: list[Block], data: st.DataObject
) -> None:
    car, _ = build([car_blocks[0].cid], car_blocks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(car)), max_size=12)))
    pieces = [car[a:b] for a, b in zip([0, *cuts], [*cuts, len(car)], strict=True)]
    assert decode_all(pieces) == decode_all([car])


def test_decoder_fed_byte_by_byte_yields_the_same_events() -> None:
    car, _ = build([], [raw_block(b"a" * 200), cbor_block({"k": [1, 2]}), raw_block(b"")])
    assert decode_all([car[i : i + 1] for i in range(len(car))]) == decode_all([car])


def test_a_cid_added_twice_is_stored_once() -> None:
    block = raw_block(b"twice")
    car, builder = build([block.cid], [block, raw_block(b"other"), block])
    _, read = read_car(car)
    assert [b.data for b in read] == [b"twice", b"other"]
    assert len(builder) == 2
    assert car.count(block.cid.bytes + b"twice") == 1


def test_header_is_the_reference_dag_cbor_of_roots_and_version() -> None:
    roots = [raw_block(b"a").cid, cbor_block({}).cid]
    expected = dag_cbor.encode(
        {"roots": [ReferenceCID.decode(root.bytes) for root in roots], "version": 1}
    )
    assert encode_header(roots) == encode_varint(len(expected)) + expected
    car, _ = build(roots, [])
    assert car == encode_varint(len(expected)) + expected


def test_section_is_varint_length_then_cid_then_data() -> None:
    block = raw_block(b"hello")
    car, _ = build([], [block])
    header = encode_header([])
    assert car[len(header) :] == encode_varint(36 + 5) + block.cid.bytes + b"hello"


def test_empty_car_with_no_blocks_reads_back() -> None:
    header, read = read_car(build([], [])[0])
    assert header.roots == ()
    assert list(read) == []


# -- corrupt and hostile input -----------------------------------------------------------


@pytest.mark.parametrize("make_block", [raw_block, blake3_block, v0_block])
def test_corrupted_block_is_refused_when_verifying(make_block: Callable[[bytes], Block]) -> None:
    block = make_block(b"the original bytes")
    car = bytearray(build([], [block])[0])
    car[-1] ^= 0x01
    with pytest.raises(CarError, match="does not match"):
        list(read_car(bytes(car))[1])
    _, read = read_car(bytes(car), verify=False)
    assert [b.data for b in read] == [b"the original byte" + bytes([ord("s") ^ 1])]


def test_block_with_an_unsupported_hash_is_refused_when_verifying() -> None:
    sha512 = CID.v1(0x55, multihash.encode(0x13, hashlib.sha512(b"x").digest()))
    car, _ = build([], [Block(sha512, b"x")])
    with pytest.raises(CarError):
        list(read_car(car)[1])


def test_every_cut_inside_a_section_is_refused_as_truncated() -> None:
    car_blocks = [raw_block(b"x" * 40), cbor_block({"a": 1}), v0_block(b"y")]
    car, builder = build([car_blocks[0].cid], car_blocks)
    boundaries = {len(encode_header([car_blocks[0].cid]))}
    boundaries |= {loc.offset + loc.length for loc in builder.locations}
    for end in range(len(car)):
        if end in boundaries:
            _, read = read_car(car[:end])  # a shorter, still valid CAR
            assert len(list(read)) == sum(1 for b in boundaries if b <= end) - 1
        else:
            with pytest.raises(CarError):
                read_all(car[:end])


def test_oversized_section_length_is_refused_before_its_bytes_arrive() -> None:
    header = encode_header([])
    for prefix in (b"", header):  # the header's own length, then a block section's
        decoder = CarDecoder()
        decoder.feed(prefix + encode_varint(MAX_SECTION_BYTES + 1))
        if prefix:
            assert isinstance(decoder.next_event(), CarHeader)
        with pytest.raises(CarError, match="exceeds"):
            decoder.next_event()


def test_section_length_at_the_limit_waits_for_data() -> None:
    decoder = CarDecoder()
    decoder.feed(encode_header([]) + encode_varint(MAX_SECTION_BYTES))
    assert isinstance(decoder.next_event(), CarHeader)
    assert decoder.next_event() is NEED_DATA


@pytest.mark.parametrize(
    "header",
    [
        {"roots": [b"\x01\x55"], "version": 1},
        {"roots": ["bafkqaaa"], "version": 1},
        {"roots": [None], "version": 1},
        {"roots": raw_block(b"").cid, "version": 1},
        {"version": 1},
        {"roots": [], "version": 2},
        {"roots": []},
        [[], 1],
    ],
    ids=repr,
)
def test_header_that_is_not_carv1_with_cid_roots_is_refused(header: object) -> None:
    encoded = dagcbor.encode(header)
    with pytest.raises(CarError):
        read_car(encode_varint(len(encoded)) + encoded)


@pytest.mark.parametrize("version", [True, 1.0])
def test_header_version_must_be_the_integer_1(version: object) -> None:
    encoded = dagcbor.encode({"roots": [], "version": version})
    with pytest.raises(CarError):
        read_car(encode_varint(len(encoded)) + encoded)


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"\x00", "empty section"),
        (b"\x80\x00", "bad section length"),  # non-minimal varint
        (b"\xff" * 10, "bad section length"),
        (b"\x05\x02\x55\x12\x20\x00", "unsupported CID version"),
        (b"\x05\x01\x55\x12\x20\x00", "shorter than its CID"),
    ],
)
def test_malformed_section_is_refused(tail: bytes, reason: str) -> None:
    with pytest.raises(CarError, match=reason):
        list(read_car(encode_header([]) + tail)[1])


def test_empty_input_and_garbage_header_are_refused() -> None:
    with pytest.raises(CarError, match="empty input"):
        read_car(b"")
    with pytest.raises(CarError, match="bad CAR header"):
        read_car(b"\x02\xa1\x01")


def test_feeding_after_end_of_input_is_refused() -> None:
    decoder = CarDecoder()
    decoder.end_of_input()
    with pytest.raises(CarError):
        decoder.feed(b"\x00")
