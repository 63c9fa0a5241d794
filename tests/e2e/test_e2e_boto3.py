"""boto3 against a real relay: objects, ranges, headers, checksums, listings, multipart,
presigned URLs.

Most tests run three times: with botocore's default checksum behaviour (a CRC32 on every
upload: a header over http, and, forced here as botocore does over TLS, an aws-chunked
trailer) and with ``request_checksum_calculation="when_required"`` (plain bodies, no
checksum unless asked). Every expectation is computed
here from the bytes sent (hashlib, zlib, blake3), never taken from relay.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import urllib.error
import urllib.request
import zlib
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote_plus

import blake3
import pytest
from botocore.exceptions import ClientError
from e2e_helpers import CHECKSUM_MODES, RelayProcess, boto_client

MiB = 1 << 20
# botocore's default over http (CRC32 header), its default over TLS (CRC32 trailer on an
# aws-chunked body), and checksums only when an operation requires them.


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def blake3_raw_cid(data: bytes) -> str:
    """CIDv1, codec raw (0x55), multihash blake3 (0x1e, 32 bytes), multibase base32 'b'."""
    binary = bytes([0x01, 0x55, 0x1E, 0x20]) + blake3.blake3(data).digest()
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def pattern(size: int, seed: int = 0) -> bytes:
    """Incompressible-looking, reproducible bytes (a SHA-256 counter stream)."""
    blocks = []
    for counter in range((size + 31) // 32):
        blocks.append(hashlib.sha256(f"{seed}:{counter}".encode()).digest())
    return b"".join(blocks)[:size]


@pytest.fixture(params=CHECKSUM_MODES)
def checksum_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def s3(checksum_mode: str, relay_server: RelayProcess) -> Any:
    calculation = "when_required" if checksum_mode == "when_required" else "when_supported"
    return boto_client(
        relay_server,
        trailer_checksums=checksum_mode == "trailer",
        request_checksum_calculation=calculation,
        response_checksum_validation=calculation,
    )


@pytest.fixture
def bucket(s3: Any, bucket_name: str) -> str:
    s3.create_bucket(Bucket=bucket_name)
    return bucket_name


# -- objects ----------------------------------------------------------------------------


def test_put_get_head_delete_round_trip(s3: Any, bucket: str) -> None:
    body = pattern(300_000)
    put = s3.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
    assert put["ETag"] == quoted_md5(body)

    got = s3.get_object(Bucket=bucket, Key="dir/object.bin")
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)
    assert got["ETag"] == quoted_md5(body)

    head = s3.head_object(Bucket=bucket, Key="dir/object.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == quoted_md5(body)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-cid"] == blake3_raw_cid(body)

    deleted = s3.delete_object(Bucket=bucket, Key="dir/object.bin")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="dir/object.bin")
    assert error_of(excinfo)[1] == 404
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="dir/object.bin")
    assert error_of(excinfo) == ("NoSuchKey", 404)


@pytest.mark.parametrize("size", [0, 1, MiB, MiB + 1, 3 * MiB + 17])
def test_etag_and_x_cid_describe_the_body(s3: Any, bucket: str, size: int) -> None:
    body = pattern(size, seed=size)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == body
    assert got["ETag"] == quoted_md5(body)
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-cid"] == blake3_raw_cid(body)


def test_overwrite_replaces_the_body(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"


def test_ranged_gets(s3: Any, bucket: str) -> None:
    body = pattern(2 * MiB + 123)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    size = len(body)
    cases = {
        "bytes=0-0": (body[:1], f"bytes 0-0/{size}"),
        "bytes=-10": (body[-10:], f"bytes {size - 10}-{size - 1}/{size}"),
        f"bytes={MiB - 5}-": (body[MiB - 5 :], f"bytes {MiB - 5}-{size - 1}/{size}"),
        f"bytes={MiB - 3}-{MiB + 2}": (
            body[MiB - 3 : MiB + 3],
            f"bytes {MiB - 3}-{MiB + 2}/{size}",
        ),
        f"bytes=10-{size * 2}": (body[10:], f"bytes 10-{size - 1}/{size}"),
    }
    for header, (expected, content_range) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"] == content_range, header
        assert got["ContentLength"] == len(expected), header
        assert got["Body"].read() == expected, header


def test_unsatisfiable_range_is_416_invalid_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-")
    assert error_of(excinfo) == ("InvalidRange", 416)


def test_metadata_and_content_headers_round_trip(
    s3: Any, bucket: str, checksum_mode: str, request: pytest.FixtureRequest
) -> None:
    expires = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    s3.put_object(
        Bucket=bucket,
        Key="doc.txt.gz",
        Body=b"hello",
        Metadata={"colour": "blue", "multi-word": "a b  c"},
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="doc.txt"',
        ContentLanguage="en-GB",
        CacheControl="max-age=60, private",
        Expires=expires,
    )
    for response in (
        s3.head_object(Bucket=bucket, Key="doc.txt.gz"),
        s3.get_object(Bucket=bucket, Key="doc.txt.gz"),
    ):
        assert response["Metadata"] == {"colour": "blue", "multi-word": "a b  c"}
        assert response["ContentType"] == "text/plain; charset=utf-8"
        assert response["ContentEncoding"] == "gzip"
        assert response["ContentDisposition"] == 'attachment; filename="doc.txt"'
        assert response["ContentLanguage"] == "en-GB"
        assert response["CacheControl"] == "max-age=60, private"
        assert response["ResponseMetadata"]["HTTPHeaders"]["expires"] == format_datetime(
            expires, usegmt=True
        )


@pytest.mark.parametrize("trailer", [False, True], ids=["header", "trailer"])
def test_default_checksum_is_stored_and_returned(
    relay_server: RelayProcess, bucket_name: str, trailer: bool
) -> None:
    s3 = boto_client(relay_server, trailer_checksums=trailer)  # default: CRC32 on every upload
    s3.create_bucket(Bucket=bucket_name)
    body = pattern(200_000, seed=3)
    crc32 = b64(zlib.crc32(body).to_bytes(4, "big"))
    put = s3.put_object(Bucket=bucket_name, Key="c", Body=body)
    assert put["ChecksumCRC32"] == crc32
    got = s3.get_object(Bucket=bucket_name, Key="c", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32
    assert got["Body"].read() == body  # botocore validates the CRC32 while reading
    head = s3.head_object(Bucket=bucket_name, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32


def test_aws_chunked_is_not_stored_as_content_encoding(
    relay_server: RelayProcess, bucket_name: str
) -> None:
    s3 = boto_client(relay_server, trailer_checksums=True)
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key="plain", Body=b"plain")
    s3.put_object(Bucket=bucket_name, Key="gzip", Body=b"gzip", ContentEncoding="gzip")
    plain = s3.head_object(Bucket=bucket_name, Key="plain")
    assert "content-encoding" not in plain["ResponseMetadata"]["HTTPHeaders"]
    assert s3.head_object(Bucket=bucket_name, Key="gzip")["ContentEncoding"] == "gzip"


def test_requested_sha256_checksum_is_stored_and_returned(s3: Any, bucket: str) -> None:
    body = pattern(50_000, seed=4)
    sha256 = b64(hashlib.sha256(body).digest())
    put = s3.put_object(Bucket=bucket, Key="c", Body=body, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == sha256
    got = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha256
    assert got["Body"].read() == body


def test_wrong_sha256_checksum_is_bad_digest(s3: Any, bucket: str) -> None:
    wrong = b64(hashlib.sha256(b"something else").digest())
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="c", Body=b"the body", ChecksumSHA256=wrong)
    assert error_of(excinfo) == ("BadDigest", 400)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="c")
    assert error_of(excinfo)[1] == 404


def test_wrong_content_md5_is_bad_digest_and_stores_nothing(s3: Any, bucket: str) -> None:
    wrong = b64(hashlib.md5(b"not the body").digest())
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="m", Body=b"the body", ContentMD5=wrong)
    assert error_of(excinfo) == ("BadDigest", 400)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="m")
    assert error_of(excinfo)[1] == 404
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_right_content_md5_is_accepted(s3: Any, bucket: str) -> None:
    body = b"the body"
    s3.put_object(Bucket=bucket, Key="m", Body=body, ContentMD5=b64(hashlib.md5(body).digest()))
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == body


# -- listings ---------------------------------------------------------------------------

LISTING_KEYS = sorted(
    [
        "a",
        "b/1",
        "b/2",
        "b/3/deep",
        "c/1",
        "d",
        "e/1",
        "e/2",
        "f/1",
        "g",
        "h",
        "h/1",
        "i/1",
        "sp ace/x",
        "plus+sign",
        "ünïcødé/ключ",
        "z",
    ],
    key=lambda key: key.encode(),
)


@pytest.fixture
def listing_bucket(s3: Any, bucket: str) -> str:
    for key in LISTING_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


def expected_listing(prefix: str, delimiter: str) -> tuple[list[str], list[str]]:
    keys, prefixes = [], []
    for key in LISTING_KEYS:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common not in prefixes:
                prefixes.append(common)
        else:
            keys.append(key)
    return keys, prefixes


def walk_v2(s3: Any, bucket: str, **params: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, **params, **extra)
        pages += 1
        page_keys = [item["Key"] for item in page.get("Contents", [])]
        page_prefixes = [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(page_keys) + len(page_prefixes)
        if "MaxKeys" in params:
            assert page["KeyCount"] <= params["MaxKeys"]
        keys += page_keys
        prefixes += page_prefixes
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            return keys, prefixes, pages
        token = page["NextContinuationToken"]
        assert pages < 100, "listing does not terminate"


def walk_v1(s3: Any, bucket: str, **params: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    marker: str | None = None
    while True:
        extra = {"Marker": marker} if marker else {}
        page = s3.list_objects(Bucket=bucket, **params, **extra)
        pages += 1
        page_keys = [item["Key"] for item in page.get("Contents", [])]
        page_prefixes = [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        if "MaxKeys" in params:
            assert len(page_keys) + len(page_prefixes) <= params["MaxKeys"]
        keys += page_keys
        prefixes += page_prefixes
        if not page["IsTruncated"]:
            return keys, prefixes, pages
        # S3 sends NextMarker only with a delimiter; otherwise the last key is the marker.
        marker = page.get("NextMarker") or page_keys[-1]
        assert pages < 100, "listing does not terminate"


@pytest.mark.parametrize("walk", [walk_v2, walk_v1], ids=["v2", "v1"])
@pytest.mark.parametrize(("prefix", "delimiter"), [("", ""), ("", "/"), ("b/", "/"), ("h", "/")])
def test_paged_listing_returns_every_key_and_prefix_once(
    s3: Any, listing_bucket: str, walk: Any, prefix: str, delimiter: str
) -> None:
    expected_keys, expected_prefixes = expected_listing(prefix, delimiter)
    total = len(expected_keys) + len(expected_prefixes)
    # Every page size from 1 up makes pages end inside, right before and right after each
    # run of common prefixes.
    for max_keys in [*range(1, total + 2), 1000]:
        keys, prefixes, pages = walk(
            s3, listing_bucket, Prefix=prefix, Delimiter=delimiter, MaxKeys=max_keys
        )
        assert keys == expected_keys, max_keys
        assert prefixes == expected_prefixes, max_keys
        assert pages == max(1, -(-total // max_keys)), max_keys


def test_listing_v2_start_after(s3: Any, listing_bucket: str) -> None:
    keys, prefixes, _ = walk_v2(s3, listing_bucket, StartAfter="b/2", Delimiter="")
    assert keys == [key for key in LISTING_KEYS if key.encode() > b"b/2"]
    assert prefixes == []
    page = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="b/", Delimiter="/")
    assert [item["Prefix"] for item in page.get("CommonPrefixes", [])][:1] == ["b/"]


def test_listing_v1_marker(s3: Any, listing_bucket: str) -> None:
    page = s3.list_objects(Bucket=listing_bucket, Marker="e/1")
    assert [item["Key"] for item in page["Contents"]] == [
        key for key in LISTING_KEYS if key.encode() > b"e/1"
    ]


def test_max_keys_zero_lists_nothing(s3: Any, listing_bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=0)
    assert page["KeyCount"] == 0
    assert "Contents" not in page
    assert page["MaxKeys"] == 0
    page_v1 = s3.list_objects(Bucket=listing_bucket, MaxKeys=0)
    assert "Contents" not in page_v1
    assert page_v1["MaxKeys"] == 0


def test_listing_entries_describe_the_objects(s3: Any, listing_bucket: str) -> None:
    contents = s3.list_objects_v2(Bucket=listing_bucket)["Contents"]
    assert [item["Key"] for item in contents] == LISTING_KEYS
    for item in contents:
        assert item["Size"] == len(item["Key"].encode())
        assert item["ETag"] == quoted_md5(item["Key"].encode())


def test_encoding_type_url_encodes_keys_and_prefixes(s3: Any, listing_bucket: str) -> None:
    # Asked for explicitly, botocore leaves the encoded values alone for us to check.
    page = s3.list_objects_v2(Bucket=listing_bucket, EncodingType="url", Delimiter="/")
    assert page["EncodingType"] == "url"
    keys = [item["Key"] for item in page["Contents"]]
    prefixes = [item["Prefix"] for item in page["CommonPrefixes"]]
    expected_keys, expected_prefixes = expected_listing("", "/")
    assert [unquote_plus(key) for key in keys] == expected_keys
    assert [unquote_plus(prefix) for prefix in prefixes] == expected_prefixes
    assert all(" " not in value and "ü" not in value for value in keys + prefixes)
    v1 = s3.list_objects(Bucket=listing_bucket, EncodingType="url")
    assert [unquote_plus(item["Key"]) for item in v1["Contents"]] == LISTING_KEYS


def test_listing_prefix_with_special_characters(s3: Any, listing_bucket: str) -> None:
    for prefix in ("sp ace/", "plus+", "ünïcødé/"):
        page = s3.list_objects_v2(Bucket=listing_bucket, Prefix=prefix)
        assert [item["Key"] for item in page["Contents"]] == [
            key for key in LISTING_KEYS if key.startswith(prefix)
        ]


# -- multi-object delete -----------------------------------------------------------------


def test_delete_objects_reports_each_key(s3: Any, bucket: str) -> None:
    for key in ("one", "two", "three"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "one"}, {"Key": "two"}, {"Key": "never"}]}
    )
    assert sorted(item["Key"] for item in result["Deleted"]) == ["never", "one", "two"]
    assert "Errors" not in result
    remaining = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in remaining] == ["three"]


def test_delete_objects_quiet_reports_nothing_but_deletes(s3: Any, bucket: str) -> None:
    for key in ("one", "two"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "one"}, {"Key": "two"}], "Quiet": True}
    )
    assert "Deleted" not in result
    assert "Errors" not in result
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_per_key_errors(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="fine", Body=b"x")
    too_long = "k" * 1025
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "fine"}, {"Key": too_long}], "Quiet": True}
    )
    assert "Deleted" not in result
    assert [(item["Key"], item["Code"]) for item in result["Errors"]] == [
        (too_long, "KeyTooLongError")
    ]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# -- multipart ---------------------------------------------------------------------------


def upload_parts(s3: Any, bucket: str, key: str, upload_id: str, parts: list[bytes]) -> list[Any]:
    completed = []
    for number, data in enumerate(parts, start=1):
        response = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        assert response["ETag"] == quoted_md5(data)
        completed.append({"PartNumber": number, "ETag": response["ETag"]})
    return completed


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def test_multipart_upload_round_trip(s3: Any, bucket: str) -> None:
    parts = [pattern(5 * MiB, seed=1), pattern(5 * MiB, seed=2), pattern(1234, seed=3)]
    body = b"".join(parts)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="big", ContentType="video/mp4")[
        "UploadId"
    ]
    completed = upload_parts(s3, bucket, "big", upload_id, parts)

    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == [
        (number, len(data), quoted_md5(data)) for number, data in enumerate(parts, start=1)
    ]
    uploads = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [("big", upload_id)]

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload_id, MultipartUpload={"Parts": completed}
    )
    assert done["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentType"] == "video/mp4"
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-cid"] == blake3_raw_cid(body)
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={5 * MiB - 2}-{5 * MiB + 1}")
    assert ranged["Body"].read() == body[5 * MiB - 2 : 5 * MiB + 2]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_complete_with_wrong_etag_is_invalid_part(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    completed = upload_parts(s3, bucket, "k", upload_id, [b"only part"])
    completed[0]["ETag"] = quoted_md5(b"another part")
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": completed}
        )
    assert error_of(excinfo) == ("InvalidPart", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_complete_out_of_order_is_invalid_part_order(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    completed = upload_parts(s3, bucket, "k", upload_id, [pattern(5 * MiB), b"tail"])
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": list(reversed(completed))},
        )
    assert error_of(excinfo) == ("InvalidPartOrder", 400)


def test_small_part_before_the_last_is_entity_too_small(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    completed = upload_parts(s3, bucket, "k", upload_id, [b"small", b"last"])
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": completed}
        )
    assert error_of(excinfo) == ("EntityTooSmall", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_aborted_upload_is_no_such_upload(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    completed = upload_parts(s3, bucket, "k", upload_id, [b"part"])
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    with pytest.raises(ClientError) as excinfo:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
    assert error_of(excinfo) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": completed}
        )
    assert error_of(excinfo) == ("NoSuchUpload", 404)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_upload_part_to_an_aborted_upload_is_no_such_upload(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    # botocore sends UploadPart with 'Expect: 100-continue': the refusal comes before the body.
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=b"x")
    assert error_of(excinfo) == ("NoSuchUpload", 404)


def test_put_object_into_a_missing_bucket_is_no_such_bucket(s3: Any, bucket_name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket_name, Key="k", Body=b"x")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_list_multipart_uploads_lists_every_upload_in_progress(s3: Any, bucket: str) -> None:
    ids: dict[str, list[str]] = {}
    for key in ("b/two", "a/one", "a/one", "c"):
        ids.setdefault(key, []).append(
            s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        )
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["Key"] for u in listed] == ["a/one", "a/one", "b/two", "c"]
    assert sorted(u["UploadId"] for u in listed) == sorted(itertools.chain(*ids.values()))
    only_a = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")["Uploads"]
    assert sorted(u["UploadId"] for u in only_a) == sorted(ids["a/one"])


# -- presigned URLs ----------------------------------------------------------------------


def test_presigned_get_url_serves_the_object(s3: Any, bucket: str) -> None:
    body = pattern(70_000, seed=9)
    s3.put_object(Bucket=bucket, Key="shared/file name+.bin", Body=body)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared/file name+.bin"}, ExpiresIn=300
    )
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["ETag"] == quoted_md5(body)
        assert response.read() == body


def test_expired_presigned_url_is_access_denied(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    an_hour_ago = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        hours=1
    )
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *_, **__: an_hour_ago)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60
    )
    monkeypatch.undo()
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(url, timeout=30)
    assert excinfo.value.code == 403
    document = excinfo.value.read()
    excinfo.value.close()
    assert b"<Code>AccessDenied</Code>" in document
    assert b"secret" not in document
