"""Headers relay does not honour are refused by name through a real server, storing nothing.

The first half drives boto3's own parameters (SSE-C, SSE-S3, SSE-KMS, object lock,
storage class, expected bucket owner, conditional delete); the second walks the refusals of
``relay.s3.headers`` request by request, signed with botocore's signer and sent raw, and
checks after each that nothing was stored: no key, no bucket, no upload, no part.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import RelayProcess
from test_e2e_errors import Reply, signed

from relay.s3 import headers as h
from relay.s3 import routing as r

UNTIL = datetime.datetime(2040, 1, 1, tzinfo=datetime.UTC)
SSE_C_KEY = b"k" * 32


def error_of(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response  # type: ignore[no-any-return]


def assert_refused(response: dict[str, Any], status: int, code: str, header: str) -> None:
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response
    assert response["Error"]["Code"] == code, response
    assert header in response["Error"]["Message"], response


def assert_no_key(client: Any, bucket: str, key: str) -> None:
    listing = client.list_objects_v2(Bucket=bucket)
    assert key not in [item["Key"] for item in listing.get("Contents", [])]


# -- boto3's own parameters --------------------------------------------------------------

WRITES_REFUSED = [
    ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_C_KEY}, 501, "NotImplemented",
     "x-amz-server-side-encryption-customer-algorithm"),
    ({"ServerSideEncryption": "AES256"}, 501, "NotImplemented", "x-amz-server-side-encryption"),
    ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "key-1"}, 501, "NotImplemented",
     "x-amz-server-side-encryption"),
    ({"SSEKMSKeyId": "key-1"}, 501, "NotImplemented",
     "x-amz-server-side-encryption-aws-kms-key-id"),
    ({"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": UNTIL}, 400,
     "InvalidRequest", "x-amz-object-lock-mode"),
    ({"ObjectLockRetainUntilDate": UNTIL}, 400, "InvalidRequest",
     "x-amz-object-lock-retain-until-date"),
    ({"ObjectLockLegalHoldStatus": "ON"}, 400, "InvalidRequest", "x-amz-object-lock-legal-hold"),
    ({"StorageClass": "GLACIER"}, 400, "InvalidStorageClass", "x-amz-storage-class"),
    ({"WebsiteRedirectLocation": "/elsewhere"}, 501, "NotImplemented",
     "x-amz-website-redirect-location"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "status", "code", "header"), WRITES_REFUSED)
def test_put_object_with_a_header_relay_does_not_honour_is_refused_and_stores_nothing(
    client: Any, bucket: str, params: dict[str, Any], status: int, code: str, header: str
) -> None:
    response = error_of(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"x", **params))
    assert_refused(response, status, code, header)
    assert_no_key(client, bucket, "k")


@pytest.mark.parametrize(("params", "status", "code", "header"), WRITES_REFUSED)
def test_create_multipart_upload_with_a_header_relay_does_not_honour_starts_no_upload(
    client: Any, bucket: str, params: dict[str, Any], status: int, code: str, header: str
) -> None:
    response = error_of(lambda: client.create_multipart_upload(Bucket=bucket, Key="k", **params))
    assert_refused(response, status, code, header)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(("params", "status", "code", "header"), WRITES_REFUSED)
def test_copy_object_with_a_header_relay_does_not_honour_copies_nothing(
    client: Any, bucket: str, params: dict[str, Any], status: int, code: str, header: str
) -> None:
    client.put_object(Bucket=bucket, Key="source", Body=b"x")
    response = error_of(
        lambda: client.copy_object(
            Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "source"}, **params
        )
    )
    assert_refused(response, status, code, header)
    assert_no_key(client, bucket, "copy")


def test_get_with_an_sse_c_key_is_refused(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    response = error_of(
        lambda: client.get_object(
            Bucket=bucket, Key="k", SSECustomerAlgorithm="AES256", SSECustomerKey=SSE_C_KEY
        )
    )
    assert_refused(response, 501, "NotImplemented", "x-amz-server-side-encryption-customer")


def test_upload_part_with_an_sse_c_key_stores_no_part(client: Any, bucket: str) -> None:
    upload = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    response = error_of(
        lambda: client.upload_part(
            Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"x" * 1000,
            SSECustomerAlgorithm="AES256", SSECustomerKey=SSE_C_KEY,
        )
    )  # fmt: skip
    assert_refused(response, 501, "NotImplemented", "x-amz-server-side-encryption-customer")
    assert client.list_parts(Bucket=bucket, Key="k", UploadId=upload).get("Parts", []) == []


def test_a_lock_enabled_bucket_is_refused_and_not_created(client: Any, bucket_name: str) -> None:
    response = error_of(
        lambda: client.create_bucket(Bucket=bucket_name, ObjectLockEnabledForBucket=True)
    )
    assert_refused(response, 501, "NotImplemented", "x-amz-bucket-object-lock-enabled")
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert bucket_name not in names


def test_a_bucket_without_object_lock_can_be_asked_for(client: Any, bucket_name: str) -> None:
    client.create_bucket(Bucket=bucket_name, ObjectLockEnabledForBucket=False)
    client.head_bucket(Bucket=bucket_name)


def test_standard_storage_class_is_accepted(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x", StorageClass="STANDARD")
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_retention_legal_hold_and_lock_configuration_are_not_implemented(
    client: Any, bucket: str
) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    calls: list[Callable[[], Any]] = [
        lambda: client.put_object_retention(
            Bucket=bucket, Key="k", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": UNTIL}
        ),
        lambda: client.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "ON"}),
        lambda: client.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        ),
    ]
    for call in calls:
        response = error_of(call)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 501, response
        assert response["Error"]["Code"] == "NotImplemented"
    lock = error_of(lambda: client.get_object_lock_configuration(Bucket=bucket))
    assert lock["Error"]["Code"] == "ObjectLockConfigurationNotFoundError"


# -- expected bucket owner, conditional delete, MFA delete -------------------------------


def test_expected_bucket_owner_must_be_the_owner(client: Any, bucket: str) -> None:
    response = error_of(
        lambda: client.put_object(
            Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner="111122223333"
        )
    )
    assert response["Error"]["Code"] == "AccessDenied"
    assert_no_key(client, bucket, "k")
    client.put_object(Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner="test")
    assert client.head_bucket(Bucket=bucket, ExpectedBucketOwner="test")
    assert error_of(lambda: client.head_bucket(Bucket=bucket, ExpectedBucketOwner="other"))


def test_copy_source_expected_owner_is_checked_on_the_source(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="source", Body=b"x")
    response = error_of(
        lambda: client.copy_object(
            Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "source"},
            ExpectedBucketOwner="test", ExpectedSourceBucketOwner="111122223333",
        )
    )  # fmt: skip
    assert response["Error"]["Code"] == "AccessDenied"
    assert_no_key(client, bucket, "copy")


def test_delete_with_if_match_is_conditional(client: Any, bucket: str) -> None:
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"x")["ETag"]
    response = error_of(lambda: client.delete_object(Bucket=bucket, Key="k", IfMatch='"0000"'))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    client.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert_no_key(client, bucket, "k")
    missing = error_of(lambda: client.delete_object(Bucket=bucket, Key="k", IfMatch="*"))
    assert missing["Error"]["Code"] == "NoSuchKey"


def test_conditional_delete_objects_is_refused_and_deletes_nothing(
    client: Any, bucket: str
) -> None:
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"x")["ETag"]
    response = error_of(
        lambda: client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "k", "ETag": etag}]}
        )
    )
    assert response["Error"]["Code"] == "NotImplemented"
    assert "ETag" in response["Error"]["Message"]
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_mfa_delete_cannot_be_enabled(client: Any, bucket: str) -> None:
    response = error_of(
        lambda: client.put_bucket_versioning(
            Bucket=bucket,
            MFA="arn:aws:iam::123456789012:mfa/user 123456",
            VersioningConfiguration={"Status": "Suspended", "MFADelete": "Enabled"},
        )
    )
    assert response["Error"]["Code"] == "NotImplemented"


# -- configuration bodies are checked against their digests ------------------------------


def test_tagging_with_a_wrong_checksum_is_bad_digest_and_changes_nothing(
    relay_server: RelayProcess, client: Any, bucket: str
) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1")
    document = (
        b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>'
        b"<Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>"
    )
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    wrong_crc32 = base64.b64encode(bytes(4)).decode()
    for header in ({"Content-MD5": wrong_md5}, {"x-amz-checksum-crc32": wrong_crc32}):
        reply = signed(relay_server, "PUT", f"/{bucket}/k?tagging", document, header)
        assert reply.status == 400, reply
        assert reply.error()["Code"] == "BadDigest"
    tags = client.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    assert tags == [{"Key": "a", "Value": "1"}]
    client.put_object_tagging(
        Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "2"}]}
    )


# -- the table, refusal by refusal --------------------------------------------------------


def refused_value(rule: h.Refused) -> str:
    return "GLACIER" if rule.unless else "AES256"


def refused_rows(endpoint: type[r.Endpoint]) -> list[tuple[str, h.Refused]]:
    rows = {**h.REFUSED_EVERYWHERE, **h.OPERATIONS[endpoint]}
    return sorted((name, rule) for name, rule in rows.items() if isinstance(rule, h.Refused))


def expect_refusal(reply: Reply, rule: h.Refused, header: str) -> None:
    assert reply.status == rule.error.status, reply
    error = reply.error()
    assert error["Code"] == rule.error.code
    assert error["Message"].startswith(header), error


@pytest.mark.parametrize(("header", "rule"), refused_rows(r.PutObject), ids=lambda v: str(v)[:60])
def test_every_header_refused_on_put_object_stores_nothing(
    relay_server: RelayProcess, client: Any, bucket: str, header: str, rule: h.Refused
) -> None:
    reply = signed(relay_server, "PUT", f"/{bucket}/k", b"data", {header: refused_value(rule)})
    expect_refusal(reply, rule, header)
    assert_no_key(client, bucket, "k")


@pytest.mark.parametrize(
    ("header", "rule"), refused_rows(r.CreateBucket), ids=lambda v: str(v)[:60]
)
def test_every_header_refused_on_create_bucket_creates_nothing(
    relay_server: RelayProcess, client: Any, bucket_name: str, header: str, rule: h.Refused
) -> None:
    reply = signed(relay_server, "PUT", f"/{bucket_name}", b"", {header: refused_value(rule)})
    expect_refusal(reply, rule, header)
    assert bucket_name not in [b["Name"] for b in client.list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    ("header", "rule"), refused_rows(r.CompleteMultipartUpload), ids=lambda v: str(v)[:60]
)
def test_every_header_refused_on_complete_leaves_the_upload_open(
    relay_server: RelayProcess, client: Any, bucket: str, header: str, rule: h.Refused
) -> None:
    upload = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"x")[
        "ETag"
    ]
    document = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    reply = signed(
        relay_server, "POST", f"/{bucket}/k?uploadId={upload}", document,
        {header: refused_value(rule)},
    )  # fmt: skip
    expect_refusal(reply, rule, header)
    assert_no_key(client, bucket, "k")
    assert [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [
        upload
    ]


@pytest.mark.parametrize(
    ("header", "rule"), refused_rows(r.DeleteObject), ids=lambda v: str(v)[:60]
)
def test_every_header_refused_on_delete_object_deletes_nothing(
    relay_server: RelayProcess, client: Any, bucket: str, header: str, rule: h.Refused
) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    reply = signed(relay_server, "DELETE", f"/{bucket}/k", b"", {header: refused_value(rule)})
    expect_refusal(reply, rule, header)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
