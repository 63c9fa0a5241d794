"""S3's checksums: each algorithm against an independent implementation, and parts'
CRCs combined into the whole object's CRC without reading a byte."""

from __future__ import annotations

import hashlib
import zlib

import crc_reference
import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.chunker import (
    Checksum,
    ChecksumType,
    allowed_types,
    checksum_of,
    combine,
    composite,
    default_type,
)

CRCS = [Checksum.CRC32, Checksum.CRC32C, Checksum.CRC64NVME]


def reference(kind: Checksum, data: bytes) -> bytes:
    if kind is Checksum.CRC32:
        return zlib.crc32(data).to_bytes(4, "big")
    if kind is Checksum.CRC32C:
        return google_crc32c.value(data).to_bytes(4, "big")
    if kind is Checksum.CRC64NVME:
        return crc_reference.crc64nvme(data).to_bytes(8, "big")
    if kind.value.startswith("xxhash"):
        return crc_reference.xxhash(data, kind.value)
    return hashlib.new(kind.value, data).digest()


@pytest.mark.parametrize("kind", list(Checksum))
def test_each_algorithm_matches_an_independent_implementation(kind: Checksum) -> None:
    for data in (b"", b"123456789", bytes(range(256)) * 300):
        assert checksum_of(kind, data) == reference(kind, data)
        assert len(checksum_of(kind, data)) == kind.digest_size


def test_check_values() -> None:
    # Published values: CRC-64/NVME's check of b"123456789"; XXH64 and XXH3-64 of b"".
    assert checksum_of(Checksum.CRC64NVME, b"123456789").hex() == "ae8b14860a799888"
    assert checksum_of(Checksum.XXHASH64, b"").hex() == "ef46db3751d8e999"
    assert checksum_of(Checksum.XXHASH3, b"").hex() == "2d06800538d394c2"


@pytest.mark.parametrize("kind", CRCS)
@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.binary(max_size=3000), max_size=8))
def test_combined_part_crcs_are_the_crc_of_the_whole(kind: Checksum, parts: list[bytes]) -> None:
    combined = combine(kind, [(checksum_of(kind, part), len(part)) for part in parts])
    assert combined == reference(kind, b"".join(parts))


@pytest.mark.parametrize("kind", CRCS)
def test_combining_large_parts_needs_only_their_lengths(kind: Checksum) -> None:
    # Parts as large as S3's (5 MiB and up): the combination is arithmetic on lengths.
    first, second = b"\x01" * (5 << 20), bytes(range(256)) * 4099
    combined = combine(
        kind, [(checksum_of(kind, first), len(first)), (checksum_of(kind, second), len(second))]
    )
    assert combined == checksum_of(kind, first + second)


@pytest.mark.parametrize("kind", list(Checksum))
def test_composite_is_the_checksum_of_the_part_checksums(kind: Checksum) -> None:
    parts = [b"a" * 100, b"b" * 7]
    digests = [checksum_of(kind, part) for part in parts]
    assert composite(kind, digests) == reference(kind, b"".join(digests))


def test_which_types_each_algorithm_allows() -> None:
    both = {ChecksumType.COMPOSITE, ChecksumType.FULL_OBJECT}
    assert allowed_types(Checksum.CRC64NVME) == {ChecksumType.FULL_OBJECT}
    assert allowed_types(Checksum.CRC32) == both
    assert allowed_types(Checksum.CRC32C) == both
    for kind in Checksum:
        if not kind.is_crc:
            assert allowed_types(kind) == {ChecksumType.COMPOSITE}
    assert default_type(Checksum.CRC64NVME) is ChecksumType.FULL_OBJECT
    assert {default_type(kind) for kind in CRCS[:2]} == {ChecksumType.COMPOSITE}


def test_a_crc_of_a_buffer_view_needs_no_copy() -> None:
    buffer = bytearray(b"0123456789" * 1000)
    view = memoryview(buffer)[5:9005].toreadonly()
    for kind in Checksum:
        assert checksum_of(kind, view) == reference(kind, bytes(buffer[5:9005]))
