"""The rules of relay.s3.checksums, as a table: which checksum a request's headers carry,
what CreateMultipartUpload may choose, and what S3 answers otherwise."""

from __future__ import annotations

import pytest

from relay.bucket.manifest import Manifest, manifest_from_ipld
from relay.chunker import Checksum, ChecksumType
from relay.ipld.cid import CID
from relay.s3 import checksums
from relay.s3.checksums import BodyChecksum
from relay.s3.errors import S3Error

CRC32_123456789 = "y/Q5Jg=="  # S3's documented CRC32 of b"123456789"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, BodyChecksum()),
        (
            {"x-amz-checksum-crc32": CRC32_123456789},
            BodyChecksum(Checksum.CRC32, bytes.fromhex("cbf43926")),
        ),
        (
            {"x-amz-checksum-crc32": CRC32_123456789, "x-amz-sdk-checksum-algorithm": "CRC32"},
            BodyChecksum(Checksum.CRC32, bytes.fromhex("cbf43926")),
        ),
        (
            {"x-amz-trailer": "x-amz-checksum-crc64nvme"},
            BodyChecksum(Checksum.CRC64NVME, None, True),
        ),
        (
            {"x-amz-trailer": "X-Amz-Checksum-SHA256", "x-amz-sdk-checksum-algorithm": "sha256"},
            BodyChecksum(Checksum.SHA256, None, True),
        ),
        ({"x-amz-sdk-checksum-algorithm": "XXHASH3"}, BodyChecksum(Checksum.XXHASH3)),
    ],
)
def test_the_checksum_a_body_carries(headers: dict[str, str], expected: BodyChecksum) -> None:
    assert checksums.body_checksum(headers) == expected


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"x-amz-checksum-crc32": CRC32_123456789, "x-amz-checksum-sha1": "AAAA"},
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ),
        (
            {"x-amz-checksum-crc32": CRC32_123456789, "x-amz-trailer": "x-amz-checksum-crc32"},
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ),
        (
            {"x-amz-trailer": "x-amz-checksum-crc33"},
            "The value specified in the x-amz-trailer header is not supported",
        ),
        ({"x-amz-checksum-crc32": "garbage!"}, "Value for x-amz-checksum-crc32 header is invalid."),
        (
            {"x-amz-checksum-crc64nvme": "garbage!"},
            "Value for x-amz-checksum-crc64nvme header is invalid.",
        ),
        (
            {"x-amz-checksum-crc32": CRC32_123456789, "x-amz-sdk-checksum-algorithm": "SHA1"},
            "Value for x-amz-sdk-checksum-algorithm header is invalid.",
        ),
        (
            {"x-amz-sdk-checksum-algorithm": "CRC16"},
            "Value for x-amz-sdk-checksum-algorithm header is invalid.",
        ),
    ],
)
def test_headers_s3_refuses(headers: dict[str, str], message: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        checksums.body_checksum(headers)
    assert (excinfo.value.code, excinfo.value.status, excinfo.value.message) == (
        "InvalidRequest",
        400,
        message,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (None, None)),
        ({"x-amz-checksum-algorithm": "CRC64NVME"}, (Checksum.CRC64NVME, ChecksumType.FULL_OBJECT)),
        ({"x-amz-checksum-algorithm": "crc32"}, (Checksum.CRC32, ChecksumType.COMPOSITE)),
        (
            {"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"},
            (Checksum.CRC32C, ChecksumType.FULL_OBJECT),
        ),
        ({"x-amz-checksum-algorithm": "SHA512"}, (Checksum.SHA512, ChecksumType.COMPOSITE)),
    ],
)
def test_what_an_upload_may_choose(
    headers: dict[str, str], expected: tuple[Checksum | None, ChecksumType | None]
) -> None:
    assert checksums.upload_checksum(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-type": "COMPOSITE"},
        {"x-amz-checksum-algorithm": "CRC32,CRC32C"},
        {"x-amz-checksum-algorithm": "nope"},
        {"x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "FULL_OBJECT"},
        {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
        {"x-amz-checksum-algorithm": "XXHASH64", "x-amz-checksum-type": "FULL_OBJECT"},
        {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "full_object"},
    ],
)
def test_uploads_s3_refuses(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as excinfo:
        checksums.upload_checksum(headers)
    assert (excinfo.value.code, excinfo.value.status) == ("InvalidRequest", 400)


def test_a_part_must_carry_the_uploads_algorithm() -> None:
    checksums.check_part(BodyChecksum(Checksum.CRC32, None, True), Checksum.CRC32)
    checksums.check_part(BodyChecksum(Checksum.SHA1), None)
    with pytest.raises(S3Error, match="expected checksum Type: crc32, actual checksum Type: null"):
        checksums.check_part(BodyChecksum(), Checksum.CRC32)


def manifest(**fields: object) -> Manifest:
    return Manifest(
        key="k",
        size=3,
        body=CID.raw_sha256(bytes(32)),
        chunk_size=1 << 20,
        etag="e",
        last_modified_ms=1,
        **fields,  # type: ignore[arg-type]
    )


def test_manifests_record_their_checksum_type() -> None:
    single = manifest(checksums={"crc32": b"\x01\x02\x03\x04"})
    assert (single.checksum_type, single.checksum_values()) == (
        "FULL_OBJECT",
        {"crc32": "AQIDBA=="},
    )
    old_multipart = manifest(checksums={"crc32": b"\x01\x02\x03\x04"}, part_sizes=(1, 2))
    assert (old_multipart.checksum_type, old_multipart.checksum_values()["crc32"]) == (
        "COMPOSITE",
        "AQIDBA==-2",
    )
    full = manifest(
        checksums={"crc32": b"\x01\x02\x03\x04"},
        part_sizes=(1, 2),
        stored_checksum_type="FULL_OBJECT",
    )
    assert full.checksum_values()["crc32"] == "AQIDBA=="
    for value in (single, old_multipart, full):
        assert manifest_from_ipld(value.to_ipld()) == value
    assert "ctype" not in old_multipart.to_ipld()
