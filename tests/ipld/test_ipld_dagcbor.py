"""The fast DAG-CBOR codec: byte-identical to the `dag-cbor` package, and strict on input."""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID as ReferenceCID

from relay.ipld import dagcbor, multihash
from relay.ipld.cid import CID
from relay.ipld.dagcbor import DagCborError

INT64_EDGES = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
INT_EDGES = INT64_EDGES + [-1 - n for n in INT64_EDGES]

cids = st.one_of(
    st.binary(min_size=32, max_size=32).map(CID.raw_sha256),
    st.binary(min_size=32, max_size=32).map(CID.dag_cbor_sha256),
    st.binary(min_size=32, max_size=32).map(lambda d: CID(multihash.wrap_sha2_256(d))),  # v0
    st.binary(min_size=32, max_size=32).map(lambda d: CID.v1(0x55, multihash.wrap_blake3(d))),
    st.binary(max_size=20).map(lambda d: CID.v1(0x71, multihash.encode(multihash.IDENTITY, d))),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.sampled_from(INT_EDGES),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(),
    cids,
)
ipld_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=30,
)


def to_reference(value: Any) -> Any:
    """The same value with relay CIDs swapped for `multiformats` CIDs."""
    if type(value) is CID:
        return ReferenceCID.decode(value.bytes)
    if type(value) is list:
        return [to_reference(item) for item in value]
    if type(value) is dict:
        return {key: to_reference(item) for key, item in value.items()}
    return value


def assert_same(actual: Any, expected: Any) -> None:
    """Equality that also checks types (``1 == 1.0 == True`` in Python) and the sign of 0.0."""
    assert type(actual) is type(expected), (actual, expected)
    if type(expected) is float:
        assert struct.pack(">d", actual) == struct.pack(">d", expected)
    elif type(expected) is list:
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same(a, e)
    elif type(expected) is dict:
        assert set(actual) == set(expected)
        for key in expected:
            assert_same(actual[key], expected[key])
    elif type(expected) is ReferenceCID:
        assert bytes(actual) == bytes(expected)
    else:
        assert actual == expected


@given(ipld_values)
@settings(max_examples=150)
def test_encoding_is_byte_identical_to_the_reference(value: Any) -> None:
    assert dagcbor.encode(value) == dag_cbor.encode(to_reference(value))


@given(ipld_values)
def test_decode_inverts_encode(value: Any) -> None:
    assert_same(dagcbor.decode(dagcbor.encode(value)), value)


@given(ipld_values)
def test_reference_decodes_relay_output_to_the_value(value: Any) -> None:
    assert_same(dag_cbor.decode(dagcbor.encode(value)), to_reference(value))


@given(ipld_values)
def test_relay_decodes_reference_output_to_the_value(value: Any) -> None:
    assert_same(dagcbor.decode(dag_cbor.encode(to_reference(value))), value)


@given(ipld_values)
def test_every_truncation_is_refused(value: Any) -> None:
    encoded = dagcbor.encode(value)
    for end in range(len(encoded)):
        with pytest.raises(DagCborError):
            dagcbor.decode(encoded[:end])


@given(ipld_values, st.binary(min_size=1, max_size=4))
def test_trailing_bytes_are_refused(value: Any, extra: bytes) -> None:
    with pytest.raises(DagCborError, match="trailing"):
        dagcbor.decode(dagcbor.encode(value) + extra)


def test_map_keys_are_sorted_length_first() -> None:
    # Bytewise order would put "aa" before "b"; DAG-CBOR's order is by length first.
    encoded = dagcbor.encode({"aa": 1, "b": 2, "": 3})
    assert encoded == bytes.fromhex("a3 60 03 61 62 02 62 61 61 01")
    assert encoded == dag_cbor.encode({"aa": 1, "b": 2, "": 3})


def test_tuples_encode_as_lists() -> None:
    assert dagcbor.encode((1, "a")) == dagcbor.encode([1, "a"])


def test_cid_link_is_tag_42_of_zero_and_the_binary_cid() -> None:
    cid = CID.raw_sha256(bytes(range(32)))
    assert dagcbor.encode(cid) == b"\xd8\x2a\x58\x25\x00" + cid.bytes


def test_decoded_byte_strings_are_bytes() -> None:
    assert type(dagcbor.decode(b"\x82\x41\x00\x40")[0]) is bytes


# -- values DAG-CBOR cannot hold ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        2**64,
        -(2**64) - 1,
        math.nan,
        math.inf,
        -math.inf,
        {1: "non-string key"},
        {b"k": "bytes key"},
        {"nested": {None: 1}},
        {1, 2},
        object(),
    ],
    ids=repr,
)
def test_values_outside_the_data_model_are_refused(value: Any) -> None:
    with pytest.raises(DagCborError):
        dagcbor.encode(value)


# -- non-canonical and non-DAG-CBOR input ------------------------------------------------

CID_BYTES = CID.raw_sha256(bytes(32)).bytes

# case -> (input as hex, a fragment of the error that names the reason)
NON_CANONICAL: dict[str, tuple[str, str]] = {
    # map keys
    "unsorted keys": ("a2 6162 01 6161 02", "canonical order"),
    "bytewise- not length-first order": ("a2 626161 01 6162 02", "canonical order"),
    "duplicate keys": ("a2 6161 01 6161 02", "canonical order"),
    "integer key": ("a1 01 01", "map keys are strings"),
    "byte-string key": ("a1 4161 01", "map keys are strings"),
    "array key": ("a1 80 01", "map keys are strings"),
    # integers and lengths in longer forms than needed
    "uint 5 in one extra byte": ("18 05", "non-minimal"),
    "uint 255 in two bytes": ("19 00ff", "non-minimal"),
    "uint 65535 in four bytes": ("1a 0000ffff", "non-minimal"),
    "uint 2**32-1 in eight bytes": ("1b 00000000ffffffff", "non-minimal"),
    "negative in an extra byte": ("38 05", "non-minimal"),
    "byte-string length": ("58 01 00", "non-minimal"),
    "text length": ("78 01 61", "non-minimal"),
    "array length": ("98 00", "non-minimal"),
    "map length": ("b8 00", "non-minimal"),
    "tag 42 in two bytes": ("d9 002a 5825 00" + CID_BYTES.hex(), "non-minimal"),
    # indefinite lengths and reserved additional information
    "indefinite bytes": ("5f 4100 ff", "indefinite"),
    "indefinite text": ("7f 6161 ff", "indefinite"),
    "indefinite array": ("9f 01 ff", "indefinite"),
    "indefinite map": ("bf 6161 01 ff", "indefinite"),
    "lone break": ("ff", "simple values"),
    "reserved info 28": ("1c", "indefinite"),
    # tags
    "tag 0 (date string)": ("c0 6161", "is not allowed"),
    "tag 2 (bignum)": ("c2 4101", "is not allowed"),
    "tag 43": ("d8 2b 5825 00" + CID_BYTES.hex(), "is not allowed"),
    "tag 42 without the 0x00 prefix": ("d8 2a 5824" + CID_BYTES.hex(), "0x00 followed"),
    "tag 42 with a 0x01 prefix": ("d8 2a 5825 01" + CID_BYTES.hex(), "0x00 followed"),
    "tag 42 of an empty byte string": ("d8 2a 40", "0x00 followed"),
    "tag 42 of text": ("d8 2a 6161", "0x00 followed"),
    "tag 42 of a truncated CID": ("d8 2a 5824 00" + CID_BYTES[:-1].hex(), "digest bytes"),
    "tag 42 of a CIDv2": ("d8 2a 5825 00 02" + CID_BYTES[1:].hex(), "CID version"),
    # simple values and floats
    "16-bit float": ("f9 3c00", "simple values"),
    "32-bit float": ("fa 3f800000", "simple values"),
    "NaN": ("fb 7ff8000000000000", "NaN"),
    "+Infinity": ("fb 7ff0000000000000", "NaN"),
    "-Infinity": ("fb fff0000000000000", "NaN"),
    "undefined": ("f7", "simple values"),
    "simple value 16": ("f0", "simple values"),
    "simple value in one byte": ("f8 20", "simple values"),
    # text
    "invalid UTF-8": ("62 c328", "UTF-8"),
    "invalid UTF-8 key": ("a1 62c328 01", "UTF-8"),
    "UTF-8 surrogate": ("63 eda080", "UTF-8"),
    # framing
    "empty input": ("", "truncated"),
    "length beyond the input": ("5a 00010000 00", "truncated"),
    "trailing byte": ("01 01", "trailing"),
}


@pytest.mark.parametrize(
    ("hex_bytes", "reason"), list(NON_CANONICAL.values()), ids=list(NON_CANONICAL)
)
def test_decoder_refuses(hex_bytes: str, reason: str) -> None:
    with pytest.raises(DagCborError, match=re.escape(reason)):
        dagcbor.decode(bytes.fromhex(hex_bytes))


def test_canonical_tag_42_link_decodes_to_the_cid() -> None:
    # The control for the tag 42 refusals above: only the canonical form decodes.
    assert dagcbor.decode(bytes.fromhex("d82a5825 00" + CID_BYTES.hex())) == CID(CID_BYTES)


def test_deep_nesting_is_refused_rather_than_exhausting_the_stack() -> None:
    with pytest.raises(DagCborError, match="deeper"):
        dagcbor.decode(b"\x81" * 10_000 + b"\x00")
    assert dagcbor.decode(b"\x81" * 200 + b"\x00") is not None


@given(ipld_values)
def test_the_verified_block_decoder_agrees_with_the_strict_one(value: Any) -> None:
    encoded = dagcbor.encode(value)
    assert_same(dagcbor.decode_verified(encoded), dagcbor.decode(encoded))


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("d863") + b"\x01",  # tag 99, not a link
        bytes.fromhex("d82a") + b"\x43\x01\x02\x03",  # tag 42 without the 0x00 prefix
        bytes.fromhex("d82a") + b"\x01",  # tag 42 holding an integer
        b"\x82\x01",  # truncated
    ],
)
def test_the_verified_block_decoder_still_refuses_what_is_not_dag_cbor(data: bytes) -> None:
    with pytest.raises(DagCborError):
        dagcbor.decode_verified(data)
