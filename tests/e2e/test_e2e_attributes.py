"""Reading about objects against a real relay: GET / HEAD ?partNumber=N on multipart objects,
GetObjectAttributes, ListMultipartUploads pagination and the response-* overrides on GET
(presigned downloads use them).

Every expectation is computed here from the bytes sent (hashlib), never taken from relay.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import RelayProcess
from test_e2e_boto3 import (
    MiB,
    error_of,
    multipart_etag,
    pattern,
    quoted_md5,
    upload_parts,
)
from test_e2e_errors import signed

PARTS = (5 * MiB, 5 * MiB, 1234)


@pytest.fixture(scope="module")
def multipart_object(client: Any) -> tuple[str, str, list[bytes]]:
    """(bucket, key, parts) of a three-part object, uploaded once for the module's readers."""
    s3 = client
    bucket, key = "attributes-multipart-object", "mp/object.bin"
    s3.create_bucket(Bucket=bucket)
    parts = [pattern(size, seed=n) for n, size in enumerate(PARTS)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    completed = upload_parts(s3, bucket, key, upload_id, parts)
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": completed}
    )
    return bucket, key, parts


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


# -- ?partNumber=N -----------------------------------------------------------------------


def test_get_part_number_serves_that_part(
    relay_server: RelayProcess, multipart_object: tuple[str, str, list[bytes]]
) -> None:
    bucket, key, parts = multipart_object
    total = sum(len(part) for part in parts)
    start = 0
    for number, part in enumerate(parts, start=1):
        reply = signed(relay_server, "GET", f"/{bucket}/{key}?partNumber={number}")
        assert reply.status == 206, (number, reply.status)
        assert reply.headers["content-range"] == f"bytes {start}-{start + len(part) - 1}/{total}"
        assert reply.headers["content-length"] == str(len(part))
        assert reply.headers["x-amz-mp-parts-count"] == str(len(parts))
        assert reply.headers["etag"] == multipart_etag(parts), "the ETag is the whole object's"
        assert reply.body == part, f"part {number} has the wrong bytes"
        start += len(part)


def test_head_part_number_describes_that_part(
    client: Any, multipart_object: tuple[str, str, list[bytes]]
) -> None:
    bucket, key, parts = multipart_object
    head = client.head_object(Bucket=bucket, Key=key, PartNumber=3)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["PartsCount"] == 3
    assert head["ContentLength"] == len(parts[2])
    total = sum(len(part) for part in parts)
    assert head["ContentRange"] == f"bytes {total - len(parts[2])}-{total - 1}/{total}"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_part_number_past_the_last_part_is_416_invalid_part_number(
    relay_server: RelayProcess, multipart_object: tuple[str, str, list[bytes]], method: str
) -> None:
    # swift's s3api, which mirrors AWS, answers 416 InvalidPartNumber ("The requested
    # partnumber is not satisfiable"); a HEAD answer has no body.
    bucket, key, _ = multipart_object
    reply = signed(relay_server, method, f"/{bucket}/{key}?partNumber=4")
    assert reply.status == 416, reply.status
    if method == "GET":
        assert reply.error()["Code"] == "InvalidPartNumber"


def test_part_number_with_a_range_is_invalid_request(
    relay_server: RelayProcess, multipart_object: tuple[str, str, list[bytes]]
) -> None:
    # "Cannot specify both Range header and partNumber query parameter" (400 InvalidRequest).
    bucket, key, _ = multipart_object
    path = f"/{bucket}/{key}?partNumber=1"
    reply = signed(relay_server, "GET", path, headers={"Range": "bytes=0-9"})
    assert reply.status == 400, reply.status
    assert reply.error()["Code"] == "InvalidRequest"


def test_part_number_one_of_a_single_part_object_is_the_whole_object(
    relay_server: RelayProcess, bucket: str
) -> None:
    body = pattern(3000, seed=9)
    assert signed(relay_server, "PUT", f"/{bucket}/single", body).status == 200
    reply = signed(relay_server, "GET", f"/{bucket}/single?partNumber=1")
    assert reply.status == 206, reply.status
    assert reply.headers["content-range"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    assert reply.body == body
    # GetObject reference: PartsCount "is only returned if ... uploaded as a multipart upload".
    assert "x-amz-mp-parts-count" not in reply.headers
    assert signed(relay_server, "GET", f"/{bucket}/single?partNumber=2").status == 416


# -- GetObjectAttributes -----------------------------------------------------------------


def test_object_attributes_of_a_single_part_object(s3: Any, bucket: str) -> None:
    body = pattern(40_000, seed=1)
    s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="SHA256")
    attributes = s3.get_object_attributes(
        Bucket=bucket,
        Key="k",
        ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
    )
    # GetObjectAttributes returns the ETag without the quotes HeadObject puts around it.
    assert attributes["ETag"] == hashlib.md5(body).hexdigest()
    assert attributes["ObjectSize"] == len(body)
    assert attributes["Checksum"]["ChecksumSHA256"] == b64(hashlib.sha256(body).digest())
    assert attributes["StorageClass"] == "STANDARD"
    assert "LastModified" in attributes
    assert "ObjectParts" not in attributes, "a single PUT has no parts"


def test_object_attributes_answers_only_what_was_asked(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"12345")
    attributes = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert attributes["ObjectSize"] == 5
    assert "ETag" not in attributes
    assert "Checksum" not in attributes


def test_object_attributes_of_a_multipart_object(
    client: Any, multipart_object: tuple[str, str, list[bytes]]
) -> None:
    bucket, key, parts = multipart_object
    attributes = client.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["ETag", "ObjectParts", "ObjectSize"]
    )
    assert attributes["ETag"] == multipart_etag(parts).strip('"')
    assert attributes["ObjectSize"] == sum(len(part) for part in parts)
    assert attributes["ObjectParts"]["TotalPartsCount"] == len(parts)


@pytest.fixture
def sha256_multipart(s3: Any, bucket: str) -> tuple[str, list[bytes]]:
    """A three-part object ``mp`` whose parts were uploaded with SHA-256 checksums."""
    parts = [pattern(5 * MiB, seed=21), pattern(5 * MiB, seed=22), b"last part"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    completed = []
    for number, data in enumerate(parts, start=1):
        response = s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="SHA256",
        )
        assert response["ChecksumSHA256"] == b64(hashlib.sha256(data).digest())
        completed.append(
            {
                "PartNumber": number,
                "ETag": response["ETag"],
                "ChecksumSHA256": response["ChecksumSHA256"],
            }
        )
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": completed}
    )
    return bucket, parts


def test_object_attributes_list_parts_with_their_checksums_page_by_page(
    s3: Any, sha256_multipart: tuple[str, list[bytes]]
) -> None:
    bucket, parts = sha256_multipart
    expected = [
        (number, len(data), b64(hashlib.sha256(data).digest()))
        for number, data in enumerate(parts, start=1)
    ]
    first = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert first["TotalPartsCount"] == 3
    assert first["IsTruncated"] is True
    assert first["MaxParts"] == 2
    assert str(first["NextPartNumberMarker"]) == "2"
    second = s3.get_object_attributes(
        Bucket=bucket,
        Key="mp",
        ObjectAttributes=["ObjectParts"],
        MaxParts=2,
        PartNumberMarker=2,
    )["ObjectParts"]
    assert second["IsTruncated"] is False
    listed = [
        (part["PartNumber"], part["Size"], part["ChecksumSHA256"])
        for part in first["Parts"] + second["Parts"]
    ]
    assert listed == expected


def test_object_attributes_checksum_of_a_multipart_object_is_composite(
    s3: Any, sha256_multipart: tuple[str, list[bytes]]
) -> None:
    # S3's composite checksum: the checksum of the parts' binary checksums, then "-N".
    bucket, parts = sha256_multipart
    digests = b"".join(hashlib.sha256(data).digest() for data in parts)
    attributes = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["Checksum"])
    checksum = attributes["Checksum"]
    assert checksum["ChecksumSHA256"] == f"{b64(hashlib.sha256(digests).digest())}-{len(parts)}"
    assert checksum.get("ChecksumType", "COMPOSITE") == "COMPOSITE"


def test_object_attributes_of_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="nothing", ObjectAttributes=["ETag"])
    assert error_of(excinfo) == ("NoSuchKey", 404)


# -- ListMultipartUploads pagination -----------------------------------------------------


def test_list_multipart_uploads_pages_through_every_upload_once(client: Any, bucket: str) -> None:
    s3 = client
    keys = ["d/1", "b", "a", "b", "c", "b"]
    started = [
        (key, s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]) for key in keys
    ]
    pages = list(
        s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    )
    listed = [(u["Key"], u["UploadId"]) for page in pages for u in page.get("Uploads", [])]
    assert [key for key, _ in listed] == sorted(keys), "uploads are listed by key"
    assert sorted(listed) == sorted(started), "every upload exactly once"
    assert len(pages) == 3, [len(page.get("Uploads", [])) for page in pages]
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    for page in pages:
        assert page["MaxUploads"] == 2
        assert len(page.get("Uploads", [])) <= 2
    first = pages[0]
    assert (first["NextKeyMarker"], first["NextUploadIdMarker"]) == listed[1]


def test_list_multipart_uploads_key_marker_skips_that_key(client: Any, bucket: str) -> None:
    # ListMultipartUploads reference: with key-marker alone, uploads for keys
    # lexicographically greater than the marker are listed.
    s3 = client
    for key in ("a", "b", "b", "c"):
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    page = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b")
    assert [u["Key"] for u in page["Uploads"]] == ["c"]


# -- response-* overrides ----------------------------------------------------------------

OVERRIDES = {
    "ResponseContentType": ("content-type", "text/csv"),
    "ResponseContentLanguage": ("content-language", "fr"),
    "ResponseExpires": ("expires", "Fri, 01 Apr 2033 12:00:00 GMT"),
    "ResponseCacheControl": ("cache-control", "no-cache"),
    "ResponseContentDisposition": ("content-disposition", 'attachment; filename="x.csv"'),
    "ResponseContentEncoding": ("content-encoding", "identity"),
}


def test_response_overrides_set_the_get_headers_only(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"a,b\n", ContentType="application/octet-stream")
    params: dict[str, Any] = {name: value for name, (_, value) in OVERRIDES.items()}
    # botocore takes a datetime for ResponseExpires and sends it as an HTTP date.
    params["ResponseExpires"] = parsedate_to_datetime(params["ResponseExpires"])
    got = s3.get_object(Bucket=bucket, Key="k", **params)
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    for header, value in OVERRIDES.values():
        assert headers.get(header) == value, header
    assert got["Body"].read() == b"a,b\n"
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ContentType"] == "application/octet-stream", "the stored object must not change"
    assert "ContentDisposition" not in head


def test_presigned_get_with_response_content_disposition(client: Any, bucket: str) -> None:
    s3 = client
    body = pattern(5000, seed=3)
    s3.put_object(Bucket=bucket, Key="report.bin", Body=body)
    disposition = 'attachment; filename="report 2031.bin"'
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": "report.bin",
            "ResponseContentDisposition": disposition,
            "ResponseContentType": "application/x-report",
        },
        ExpiresIn=300,
    )
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"] == disposition
        assert response.headers["Content-Type"] == "application/x-report"
        assert response.headers["ETag"] == quoted_md5(body)
        assert response.read() == body
