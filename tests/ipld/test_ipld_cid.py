"""Varints, multibase, multihashes and CIDs, cross-checked against the `multiformats` package."""

from __future__ import annotations

import hashlib
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import CID as ReferenceCID
from multiformats import multibase as reference_multibase
from multiformats import varint as reference_varint

from relay.ipld import multihash
from relay.ipld.base import (
    MultibaseError,
    b32decode_lower,
    b32encode_lower,
    b58decode,
    b58encode,
    multibase_decode,
)
from relay.ipld.cid import CID, DAG_CBOR, DAG_PB, RAW, CIDError, blob_key, parse_blob_key
from relay.ipld.varint import VarintError, decode_varint, encode_varint

MAX_VARINT = (1 << 63) - 1  # nine 7-bit groups: the multiformats limit

# A CIDv0 and its CIDv1 form, as published in the CID specification's examples.
V0_TEXT = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
V0_AS_V1_TEXT = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

# Codecs and hash functions multiformats knows, with their digest sizes (None: any size).
KNOWN_CODECS = [RAW, DAG_PB, DAG_CBOR, 0x0129, 0x0202, 0x72, 0x78]
KNOWN_HASHES = [(0x12, 32), (0x13, 64), (0x11, 20), (0x1E, 32), (0x00, None)]


@st.composite
def multihashes(draw: st.DrawFn) -> bytes:
    code, size = draw(st.sampled_from(KNOWN_HASHES))
    digest = draw(st.binary(min_size=size or 0, max_size=size or 40))
    return multihash.encode(code, digest)


@st.composite
def cids(draw: st.DrawFn) -> CID:
    if draw(st.booleans()):
        return CID(multihash.wrap_sha2_256(draw(st.binary(min_size=32, max_size=32))))
    return CID.v1(draw(st.sampled_from(KNOWN_CODECS)), draw(multihashes()))


# -- varints -----------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=MAX_VARINT))
def test_varint_round_trips_and_matches_multiformats(value: int) -> None:
    encoded = encode_varint(value)
    assert encoded == reference_varint.encode(value)
    assert decode_varint(encoded) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=MAX_VARINT), st.binary(max_size=4), st.binary())
def test_varint_decodes_at_an_offset_and_stops_at_its_end(
    value: int, before: bytes, after: bytes
) -> None:
    encoded = encode_varint(value)
    assert decode_varint(before + encoded + after, len(before)) == (
        value,
        len(before) + len(encoded),
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\xff\xff", b"\x81\x80\x80"],
    ids=["empty", "lone-continuation", "two-continuations", "three-continuations"],
)
def test_truncated_varint_is_refused(data: bytes) -> None:
    with pytest.raises(VarintError, match="truncated"):
        decode_varint(data)


@pytest.mark.parametrize("data", [b"\x80\x00", b"\xff\x00", b"\x81\x80\x00", b"\x80\x80\x80\x00"])
def test_non_minimal_varint_is_refused(data: bytes) -> None:
    with pytest.raises(VarintError, match="minimal"):
        decode_varint(data)


def test_varint_longer_than_nine_bytes_is_refused() -> None:
    assert decode_varint(b"\xff" * 8 + b"\x7f") == (MAX_VARINT, 9)
    with pytest.raises(VarintError):
        decode_varint(b"\x80" * 9 + b"\x01")


def test_negative_varint_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        encode_varint(-1)


def test_varint_encoder_refuses_what_the_decoder_refuses() -> None:
    with pytest.raises(ValueError, match="9 bytes"):
        reference_varint.encode(1 << 63)
    with pytest.raises(VarintError):
        encode_varint(1 << 63)


# -- multibase ---------------------------------------------------------------------------


@given(st.tuples(st.integers(0, 3), st.binary(max_size=80)).map(lambda t: b"\x00" * t[0] + t[1]))
def test_base58btc_round_trips_and_matches_multiformats(data: bytes) -> None:
    text = b58encode(data)
    assert "z" + text == reference_multibase.encode(data, "base58btc")
    assert b58decode(text) == data
    assert multibase_decode("z" + text) == data


@given(st.binary(max_size=80))
def test_base32_and_base16_round_trip_and_match_multiformats(data: bytes) -> None:
    text = b32encode_lower(data)
    assert "b" + text == reference_multibase.encode(data, "base32")
    assert b32decode_lower(text) == data
    assert multibase_decode("b" + text) == data
    assert multibase_decode(reference_multibase.encode(data, "base16")) == data


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m" + "AXESIA",  # base64: a multibase relay does not speak
        "Bafy",  # base32 upper is a different multibase
        "bAFY",
        "b1",  # '1' is not in the base32 alphabet
        "babc",  # 3 base32 characters cannot end a quantum
        "z0OIl",  # base58 leaves out 0, O, I and l
        "fzz",
        "f123",
    ],
)
def test_garbage_multibase_is_refused(text: str) -> None:
    with pytest.raises(MultibaseError):
        multibase_decode(text)


@pytest.mark.parametrize("text", ["zé", "bé", "Qm" + "é" * 44], ids=["base58", "base32", "v0"])
def test_non_ascii_cid_text_is_refused_with_cid_error(text: str) -> None:
    with pytest.raises(CIDError):
        CID.decode(text)


# -- multihashes -------------------------------------------------------------------------


@given(st.binary())
def test_sha2_256_multihash_is_code_length_digest(data: bytes) -> None:
    mh = multihash.sha2_256(data)
    assert mh == b"\x12\x20" + hashlib.sha256(data).digest()
    assert multihash.decode(mh) == (0x12, hashlib.sha256(data).digest())
    assert multihash.matches(mh, data)
    assert not multihash.matches(mh, data + b"!")


@given(st.binary(max_size=100))
def test_blake3_and_identity_multihashes_match_their_data(data: bytes) -> None:
    blake = multihash.encode(multihash.BLAKE3, multihash.digest_of(multihash.BLAKE3, data))
    assert blake == multihash.wrap_blake3(multihash.digest_of(multihash.BLAKE3, data))
    assert multihash.matches(blake, data)
    identity = multihash.encode(multihash.IDENTITY, data)
    assert multihash.matches(identity, data)
    assert not multihash.matches(identity, data + b"\x00")


@pytest.mark.parametrize(
    "mh",
    [
        b"\x12\x20" + b"\x00" * 31,  # one digest byte short
        b"\x12\x20" + b"\x00" * 33,  # one too many
        b"\x12",  # no length
        b"\x92",  # truncated code
        b"\x12\x80\x00",  # non-minimal length
    ],
)
def test_multihash_with_wrong_digest_length_or_bad_varint_is_refused(mh: bytes) -> None:
    with pytest.raises(multihash.MultihashError):
        multihash.decode(mh)


def test_wrapping_a_digest_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(multihash.MultihashError):
        multihash.wrap_sha2_256(b"\x00" * 31)
    with pytest.raises(multihash.MultihashError):
        multihash.wrap_blake3(b"\x00" * 33)


# -- CIDs --------------------------------------------------------------------------------


@given(cids())
def test_cid_binary_and_string_forms_match_multiformats(cid: CID) -> None:
    reference = ReferenceCID.decode(cid.bytes)
    assert bytes(reference) == cid.bytes
    assert cid.version == reference.version
    assert cid.codec == reference.codec.code
    assert cid.multihash == bytes(reference.digest)
    expected_text = reference.encode() if reference.version == 0 else reference.encode("base32")
    assert str(cid) == cid.encode() == expected_text
    assert CID.decode(expected_text) == cid
    assert CID.from_bytes(cid.bytes) == cid


@given(cids())
def test_cid_parses_from_every_multibase_relay_reads(cid: CID) -> None:
    v1 = cid.to_v1()
    reference = ReferenceCID.decode(cid.bytes).set(version=1)
    assert v1.bytes == bytes(reference)
    for base in ("base32", "base58btc", "base16"):
        assert CID.decode(reference.encode(base)) == v1


@given(cids())
def test_cid_is_a_value(cid: CID) -> None:
    twin = CID(bytes(cid.bytes))
    assert twin == cid
    assert hash(twin) == hash(cid)
    assert pickle.loads(pickle.dumps(cid)) == cid
    assert cid != cid.bytes
    with pytest.raises(AttributeError):
        cid._bytes = b""


def test_cidv0_parses_and_converts_to_the_specified_cidv1() -> None:
    cid = CID.decode(V0_TEXT)
    assert (cid.version, cid.codec) == (0, DAG_PB)
    assert cid.multihash == cid.bytes
    assert str(cid) == V0_TEXT
    assert str(cid.to_v1()) == V0_AS_V1_TEXT
    assert CID.decode(V0_AS_V1_TEXT) == cid.to_v1()


def test_constructors_build_cidv1_sha256_of_each_codec() -> None:
    digest = hashlib.sha256(b"relay").digest()
    for build, codec in (
        (CID.raw_sha256, "raw"),
        (CID.dag_cbor_sha256, "dag-cbor"),
        (CID.dag_pb_sha256, "dag-pb"),
    ):
        reference = ReferenceCID("base32", 1, codec, ("sha2-256", digest))
        assert build(digest).bytes == bytes(reference)
        assert str(build(digest)) == str(reference)


def test_cids_order_by_their_binary_form() -> None:
    low, high = CID.raw_sha256(b"\x00" * 32), CID.raw_sha256(b"\x01" + b"\x00" * 31)
    assert low < high
    assert sorted([high, low]) == [low, high]


@pytest.mark.parametrize(
    "binary",
    [
        b"",
        b"\x02\x55\x12\x20" + b"\x00" * 32,  # version 2
        b"\x00\x55\x12\x20" + b"\x00" * 32,  # version 0 written as a varint
        b"\x01\x55\x12\x20" + b"\x00" * 31,  # digest one byte short
        b"\x01\x55\x12\x20" + b"\x00" * 33,  # trailing byte
        b"\x01\xd5\x00\x12\x20" + b"\x00" * 32,  # codec varint not minimal
        b"\x01\xd5",  # codec varint truncated
        b"\x12\x20" + b"\x00" * 31,  # CIDv0 one byte short
    ],
)
def test_invalid_binary_cid_is_refused(binary: bytes) -> None:
    with pytest.raises(CIDError):
        CID.from_bytes(binary)
    with pytest.raises(CIDError):
        CID.decode(binary)
    with pytest.raises(CIDError):
        _ = CID(binary).version  # a lazily built CID fails when first parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qm" + "0" * 44,  # CIDv0 length and prefix, not base58
        V0_TEXT[:-1],  # too short to be a CIDv0, and 'Q' is no multibase
        "z" + V0_TEXT,  # CIDv0 may not be multibase-encoded
        "b" + b32encode_lower(CID.decode(V0_TEXT).bytes),
        V0_AS_V1_TEXT.upper(),
        V0_AS_V1_TEXT[:-3],  # digest cut short
        "x" + V0_AS_V1_TEXT[1:],
    ],
)
def test_invalid_cid_text_is_refused(text: str) -> None:
    with pytest.raises(CIDError):
        CID.decode(text)


# -- blob keys ---------------------------------------------------------------------------


@given(st.binary())
def test_blob_key_is_the_z_base58btc_multihash(data: bytes) -> None:
    mh = multihash.sha2_256(data)
    key = blob_key(mh)
    assert key == reference_multibase.encode(mh, "base58btc")
    assert key.startswith("zQm")
    assert parse_blob_key(key) == mh


@given(multihashes())
def test_blob_key_round_trips_any_multihash(mh: bytes) -> None:
    assert parse_blob_key(blob_key(mh)) == mh


@pytest.mark.parametrize(
    "key",
    [
        blob_key(multihash.sha2_256(b"x"))[1:],  # no 'z'
        "b" + b32encode_lower(multihash.sha2_256(b"x")),
        "zQm0" + "1" * 40,  # '0' is not base58
        "z" + b58encode(multihash.sha2_256(b"x")[:-1]),  # digest one byte short
        "z",
    ],
)
def test_malformed_blob_key_is_refused(key: str) -> None:
    with pytest.raises((CIDError, MultibaseError, multihash.MultihashError)):
        parse_blob_key(key)
