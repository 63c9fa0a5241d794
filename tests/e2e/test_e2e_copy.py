"""Server-side copy against a real relay: CopyObject (same bucket, across buckets, onto
itself, metadata directives, URL-encoded sources, x-amz-copy-source-if-*) and UploadPartCopy
(whole source, chunk-aligned and unaligned x-amz-copy-source-range).

relay copies by reference: the new manifest points at the source's UnixFS root, so a copy
has the source's x-cid and the data store (``<data>/blobs/packs``) barely grows. Every
expectation is computed here from the bytes sent (hashlib, blake3), never taken from relay.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import RelayProcess
from test_e2e_boto3 import (
    MiB,
    blake3_raw_cid,
    error_of,
    multipart_etag,
    pattern,
    quoted_md5,
    upload_parts,
)
from test_e2e_errors import S3_NAMESPACE, signed

# Copying by reference writes a manifest, a few tree nodes and a commit: kilobytes.
STORE_GROWTH_LIMIT_BYTES = MiB


@pytest.fixture
def other_bucket(client: Any, bucket_name: str) -> str:
    name = f"{bucket_name[:50]}-other"
    client.create_bucket(Bucket=name)
    return name


def x_cid(response: Any) -> str:
    cid: str = response["ResponseMetadata"]["HTTPHeaders"]["x-cid"]
    return cid


def packs_size(relay: RelayProcess) -> int:
    packs = Path(relay.data_dir) / "blobs" / "packs"
    return sum(path.stat().st_size for path in packs.rglob("*") if path.is_file())


# -- CopyObject --------------------------------------------------------------------------


def test_copy_within_a_bucket_has_the_source_body_etag_and_x_cid(s3: Any, bucket: str) -> None:
    body = pattern(300_000, seed=1)
    s3.put_object(Bucket=bucket, Key="src", Body=body)
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == quoted_md5(body)
    assert isinstance(copied["CopyObjectResult"]["LastModified"], datetime.datetime)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == body
    assert got["ETag"] == quoted_md5(body)
    assert x_cid(got) == blake3_raw_cid(body)
    assert x_cid(got) == x_cid(s3.head_object(Bucket=bucket, Key="src")), "x-cid changed"
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == body, "source changed"


def test_copy_across_buckets(s3: Any, bucket: str, other_bucket: str) -> None:
    body = pattern(50_000, seed=2)
    s3.put_object(Bucket=bucket, Key="src", Body=body)
    s3.copy_object(Bucket=other_bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=other_bucket, Key="dst")
    assert got["Body"].read() == body
    assert x_cid(got) == blake3_raw_cid(body)
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=other_bucket)["Contents"]] == ["dst"]


CONTENT_HEADERS = {
    "ContentType": "text/plain; charset=utf-8",
    "ContentEncoding": "gzip",
    "ContentDisposition": 'attachment; filename="a.txt"',
    "ContentLanguage": "en-GB",
    "CacheControl": "max-age=60",
}


def test_copy_keeps_metadata_and_content_headers_by_default(s3: Any, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket, Key="src", Body=b"hello", Metadata={"colour": "blue"}, **CONTENT_HEADERS
    )
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"colour": "blue"}
    for name, value in CONTENT_HEADERS.items():
        assert head[name] == value, name


def test_copy_directive_ignores_metadata_in_the_request(s3: Any, bucket: str) -> None:
    # x-amz-metadata-directive COPY: the metadata comes from the source, not the request.
    s3.put_object(Bucket=bucket, Key="src", Body=b"hello", Metadata={"colour": "blue"})
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="COPY",
        Metadata={"colour": "red"},
    )
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == {"colour": "blue"}


def test_replace_directive_takes_metadata_from_the_request(s3: Any, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket, Key="src", Body=b"hello", Metadata={"colour": "blue"}, **CONTENT_HEADERS
    )
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"shape": "round"},
        ContentType="application/json",
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"shape": "round"}, "REPLACE must drop the source's metadata"
    assert head["ContentType"] == "application/json"
    assert "ContentEncoding" not in head, "REPLACE must drop the source's content headers"
    assert head["ETag"] == quoted_md5(b"hello")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"hello"


def test_copy_onto_itself_with_replace_changes_only_the_metadata(s3: Any, bucket: str) -> None:
    body = pattern(100_000, seed=3)
    s3.put_object(Bucket=bucket, Key="k", Body=body, Metadata={"v": "1"}, ContentType="a/b")
    before = s3.head_object(Bucket=bucket, Key="k")
    s3.copy_object(
        Bucket=bucket,
        Key="k",
        CopySource={"Bucket": bucket, "Key": "k"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
        ContentType="c/d",
    )
    after = s3.get_object(Bucket=bucket, Key="k")
    assert after["Metadata"] == {"v": "2"}
    assert after["ContentType"] == "c/d"
    assert after["ETag"] == before["ETag"]
    assert x_cid(after) == x_cid(before)
    assert after["Body"].read() == body


def test_copy_onto_itself_without_replace_is_invalid_request(s3: Any, bucket: str) -> None:
    # CopyObject reference: copying an object to itself without changing its metadata (or
    # storage class, encryption, ...) is "illegal": 400 InvalidRequest.
    s3.put_object(Bucket=bucket, Key="k", Body=b"same", Metadata={"v": "1"})
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k"})
    assert error_of(excinfo) == ("InvalidRequest", 400)
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {"v": "1"}


@pytest.mark.parametrize(
    "key", ["sp ace/and+plus.bin", "ünïcødé/ключ", "q?uery&amp=1#frag", "per%cent"]
)
def test_copy_source_with_an_encoded_key(s3: Any, bucket: str, key: str) -> None:
    body = key.encode() * 100
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == body


@pytest.mark.parametrize("leading_slash", ["/", ""], ids=["slash", "no-slash"])
def test_raw_copy_source_header_is_url_decoded(
    relay_server: RelayProcess, bucket: str, leading_slash: str
) -> None:
    key = "dir/sp ace+plus/ü.bin"
    body = b"copied by header"
    assert signed(relay_server, "PUT", f"/{bucket}/{quote(key)}", body).status == 200
    source = f"{leading_slash}{bucket}/{quote(key, safe='/')}"
    reply = signed(relay_server, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": source})
    assert reply.status == 200, reply
    result = ElementTree.fromstring(reply.body)
    assert result.tag == f"{S3_NAMESPACE}CopyObjectResult", reply.body
    assert result.findtext(f"{S3_NAMESPACE}ETag") == quoted_md5(body), reply.body
    assert signed(relay_server, "GET", f"/{bucket}/dst").body == body


def test_copy_of_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nothing"})
    assert error_of(excinfo) == ("NoSuchKey", 404)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_from_a_missing_bucket_is_no_such_bucket(
    s3: Any, bucket: str, bucket_name: str
) -> None:
    missing = f"{bucket_name[:50]}-missing"
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": missing, "Key": "k"})
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_copy_of_a_multipart_object_keeps_body_and_x_cid(client: Any, bucket: str) -> None:
    s3 = client
    parts = [pattern(5 * MiB, seed=4), pattern(1234, seed=5)]
    body = b"".join(parts)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    completed = upload_parts(s3, bucket, "mp", upload_id, parts)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": completed}
    )
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "mp"})
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body
    assert x_cid(got) == blake3_raw_cid(body)


def test_copying_20_mib_does_not_grow_the_data_store(
    relay_server: RelayProcess, client: Any, bucket: str, other_bucket: str
) -> None:
    s3 = client
    body = pattern(20 * MiB, seed=6)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    before = packs_size(relay_server)
    assert before >= len(body), f"{before} B in the packs: not where the body was stored?"
    s3.copy_object(Bucket=bucket, Key="big-copy", CopySource={"Bucket": bucket, "Key": "big"})
    s3.copy_object(Bucket=other_bucket, Key="big", CopySource={"Bucket": bucket, "Key": "big"})
    growth = packs_size(relay_server) - before
    assert growth < STORE_GROWTH_LIMIT_BYTES, f"two copies of 20 MiB grew the store by {growth} B"
    assert x_cid(s3.head_object(Bucket=other_bucket, Key="big")) == blake3_raw_cid(body)


# -- x-amz-copy-source-if-* ----------------------------------------------------------------


@pytest.fixture
def source(s3: Any, bucket: str) -> tuple[str, datetime.datetime]:
    """Object ``src`` in ``bucket``: (quoted ETag, Last-Modified)."""
    s3.put_object(Bucket=bucket, Key="src", Body=b"source body")
    head = s3.head_object(Bucket=bucket, Key="src")
    return head["ETag"], head["LastModified"]


def copy_with(s3: Any, bucket: str, **conditions: Any) -> Any:
    return s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, **conditions
    )


def assert_copy_refused(s3: Any, bucket: str, **conditions: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        copy_with(s3, bucket, **conditions)
    assert error_of(excinfo) == ("PreconditionFailed", 412), conditions
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="dst")
    assert error_of(missing)[1] == 404, "a refused copy must not create the destination"


def test_copy_source_if_match(s3: Any, bucket: str, source: tuple[str, Any]) -> None:
    etag, _ = source
    assert_copy_refused(s3, bucket, CopySourceIfMatch=quoted_md5(b"other"))
    assert copy_with(s3, bucket, CopySourceIfMatch=etag)["CopyObjectResult"]["ETag"] == etag


def test_copy_source_if_none_match(s3: Any, bucket: str, source: tuple[str, Any]) -> None:
    etag, _ = source
    assert_copy_refused(s3, bucket, CopySourceIfNoneMatch=etag)
    copied = copy_with(s3, bucket, CopySourceIfNoneMatch=quoted_md5(b"other"))
    assert copied["CopyObjectResult"]["ETag"] == etag


def test_copy_source_if_modified_since(s3: Any, bucket: str, source: tuple[str, Any]) -> None:
    etag, last_modified = source
    assert_copy_refused(s3, bucket, CopySourceIfModifiedSince=last_modified)
    earlier = last_modified - datetime.timedelta(days=1)
    copied = copy_with(s3, bucket, CopySourceIfModifiedSince=earlier)
    assert copied["CopyObjectResult"]["ETag"] == etag


def test_copy_source_if_unmodified_since(s3: Any, bucket: str, source: tuple[str, Any]) -> None:
    etag, last_modified = source
    assert_copy_refused(
        s3, bucket, CopySourceIfUnmodifiedSince=last_modified - datetime.timedelta(days=1)
    )
    copied = copy_with(s3, bucket, CopySourceIfUnmodifiedSince=last_modified)
    assert copied["CopyObjectResult"]["ETag"] == etag


def test_copy_source_true_if_match_wins_over_false_if_unmodified_since(
    s3: Any, bucket: str, source: tuple[str, Any]
) -> None:
    # CopyObject reference: if-match true and if-unmodified-since false -> 200 OK, copied.
    etag, last_modified = source
    copied = copy_with(
        s3,
        bucket,
        CopySourceIfMatch=etag,
        CopySourceIfUnmodifiedSince=last_modified - datetime.timedelta(days=1),
    )
    assert copied["CopyObjectResult"]["ETag"] == etag


def test_copy_source_false_if_none_match_wins_over_true_if_modified_since(
    s3: Any, bucket: str, source: tuple[str, Any]
) -> None:
    # CopyObject reference: if-none-match false and if-modified-since true -> 412.
    etag, last_modified = source
    assert_copy_refused(
        s3,
        bucket,
        CopySourceIfNoneMatch=etag,
        CopySourceIfModifiedSince=last_modified - datetime.timedelta(days=1),
    )


# -- UploadPartCopy ----------------------------------------------------------------------


def copy_part(
    s3: Any, bucket: str, key: str, upload_id: str, number: int, source_range: str | None
) -> dict[str, Any]:
    extra = {"CopySourceRange": source_range} if source_range else {}
    response = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=number,
        CopySource={"Bucket": bucket, "Key": "src"},
        **extra,
    )
    return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}


def complete(s3: Any, bucket: str, key: str, upload_id: str, parts: list[Any]) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def test_upload_part_copy_of_the_whole_source(s3: Any, bucket: str) -> None:
    source = pattern(5 * MiB + 321, seed=7)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    first = copy_part(s3, bucket, "dst", upload_id, 1, None)
    assert first["ETag"] == quoted_md5(source)
    tail = s3.upload_part(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=2, Body=b"tail")
    done = complete(s3, bucket, "dst", upload_id, [first, {"PartNumber": 2, "ETag": tail["ETag"]}])
    assert done["ETag"] == multipart_etag([source, b"tail"])
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == source + b"tail"
    assert x_cid(got) == blake3_raw_cid(source + b"tail")


def test_upload_part_copy_of_chunk_aligned_ranges(s3: Any, bucket: str) -> None:
    source = pattern(12 * MiB, seed=8)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    halves = [source[: 6 * MiB], source[6 * MiB :]]
    parts = [
        copy_part(s3, bucket, "dst", upload_id, 1, f"bytes=0-{6 * MiB - 1}"),
        copy_part(s3, bucket, "dst", upload_id, 2, f"bytes={6 * MiB}-{12 * MiB - 1}"),
    ]
    assert [part["ETag"] for part in parts] == [quoted_md5(half) for half in halves]
    assert complete(s3, bucket, "dst", upload_id, parts)["ETag"] == multipart_etag(halves)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == source
    assert x_cid(got) == x_cid(s3.head_object(Bucket=bucket, Key="src"))


def test_upload_part_copy_of_unaligned_ranges(s3: Any, bucket: str) -> None:
    source = pattern(7 * MiB + 777, seed=9)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    first_start, first_end = MiB + 7, 6 * MiB + 99  # inclusive, both inside chunks
    pieces = [source[first_start : first_end + 1], source[3:1000]]
    parts = [
        copy_part(s3, bucket, "dst", upload_id, 1, f"bytes={first_start}-{first_end}"),
        copy_part(s3, bucket, "dst", upload_id, 2, "bytes=3-999"),
    ]
    assert [part["ETag"] for part in parts] == [quoted_md5(piece) for piece in pieces]
    assert complete(s3, bucket, "dst", upload_id, parts)["ETag"] == multipart_etag(pieces)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"".join(pieces)
    assert x_cid(got) == blake3_raw_cid(b"".join(pieces))


def test_upload_part_copy_range_past_the_end_is_refused(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"12345")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with pytest.raises(ClientError) as excinfo:
        copy_part(s3, bucket, "dst", upload_id, 1, "bytes=0-21")
    code, status = error_of(excinfo)
    # ceph/s3-tests test_multipart_copy_invalid_range accepts 400 or 416 with InvalidRange;
    # AWS itself answers 400 InvalidArgument ("Range specified is not valid...").
    assert status in (400, 416), status
    assert code in ("InvalidRange", "InvalidArgument"), code


def test_upload_part_copy_from_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with pytest.raises(ClientError) as excinfo:
        copy_part(s3, bucket, "dst", upload_id, 1, None)
    assert error_of(excinfo) == ("NoSuchKey", 404)


def test_upload_part_copy_to_a_missing_upload_is_no_such_upload(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        copy_part(s3, bucket, "dst", "no-such-upload-id", 1, None)
    assert error_of(excinfo) == ("NoSuchUpload", 404)


def test_upload_part_copy_source_if_match_mismatch_is_412(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload_id,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceIfMatch=quoted_md5(b"other"),
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)


def test_aligned_upload_part_copy_does_not_grow_the_data_store(
    relay_server: RelayProcess, client: Any, bucket: str
) -> None:
    s3 = client
    source = pattern(12 * MiB, seed=10)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    before = packs_size(relay_server)
    assert before >= len(source), f"{before} B in the packs: not where the body was stored?"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    parts = [
        copy_part(s3, bucket, "dst", upload_id, 1, f"bytes=0-{6 * MiB - 1}"),
        copy_part(s3, bucket, "dst", upload_id, 2, f"bytes={6 * MiB}-{12 * MiB - 1}"),
    ]
    complete(s3, bucket, "dst", upload_id, parts)
    growth = packs_size(relay_server) - before
    assert growth < STORE_GROWTH_LIMIT_BYTES, f"aligned part copies grew the store by {growth} B"
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == source
