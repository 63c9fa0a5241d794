"""The request-header audit table (relay.s3.headers), checked as a table.

botocore's model of S3 is AWS's own list of the headers each operation defines: every one
of them must have a row for each operation relay serves, so a header cannot be silently
dropped by being forgotten. Every refusal must name its header, and the headers real
clients send by default must pass.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import botocore.session
import pytest

from relay.bucket.engine import Engine
from relay.s3 import headers as h
from relay.s3 import routing as r
from relay.s3.app import S3App
from relay.s3.errors import InvalidRequest, InvalidStorageClass, NotImplemented_, S3Error
from tests.s3.test_s3_app import KEYS, signed

# The S3 operations of botocore's model each relay endpoint answers.
CONFIGURATIONS = ("Cors", "Encryption", "Lifecycle", "Policy", "Tagging", "Website", "Logging")
MODEL_OPERATIONS: dict[type[r.Endpoint], tuple[str, ...]] = {
    endpoint: (endpoint.__name__,)
    for endpoint in h.OPERATIONS
    if endpoint not in (r.GetBucketConfiguration, r.DeleteBucketConfiguration)
}
MODEL_OPERATIONS[r.ListObjectsV2] = ("ListObjectsV2",)
MODEL_OPERATIONS[r.GetBucketConfiguration] = (
    *(f"GetBucket{name}" for name in CONFIGURATIONS),
    "GetObjectLockConfiguration",
    "GetPublicAccessBlock",
)
MODEL_OPERATIONS[r.AccessSetting] = (
    *(f"{verb}BucketPolicy" for verb in ("Get", "Put", "Delete")),
    "GetBucketPolicyStatus",
    *(f"{verb}PublicAccessBlock" for verb in ("Get", "Put", "Delete")),
    *(f"{verb}BucketOwnershipControls" for verb in ("Get", "Put", "Delete")),
)
MODEL_OPERATIONS[r.DeleteBucketConfiguration] = tuple(
    f"DeleteBucket{name}" for name in ("Cors", "Encryption", "Lifecycle", "Policy", "Tagging")
)


def model_headers(operation: str) -> list[str]:
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model(operation).input_shape
    names = []
    for member in shape.members.values() if shape is not None else ():
        location = member.serialization.get("location")
        if location == "header":
            names.append(member.serialization["name"].lower())
        elif location == "headers":  # the x-amz-meta- prefix
            names.append(member.serialization["name"].lower() + "*")
    return names


def every_endpoint_relay_dispatches() -> set[type[r.Endpoint]]:
    from relay.s3.app import _DISPATCH

    return set(_DISPATCH) | {r.ListBuckets}


def test_every_dispatched_operation_has_a_table() -> None:
    assert every_endpoint_relay_dispatches() <= set(h.OPERATIONS)


@pytest.mark.parametrize(
    ("endpoint", "operation"),
    [(endpoint, name) for endpoint, names in MODEL_OPERATIONS.items() for name in names],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_every_header_aws_defines_has_a_row(endpoint: type[r.Endpoint], operation: str) -> None:
    missing = [name for name in model_headers(operation) if h.rule_for(endpoint, name) is None]
    assert missing == [], f"{operation}: classify these headers in relay.s3.headers"


REFUSED = sorted(
    {
        (endpoint, name, rule)
        for endpoint, rules in h.OPERATIONS.items()
        for name, rule in [*rules.items(), *h.REFUSED_EVERYWHERE.items()]
        if isinstance(rule, h.Refused)
    },
    key=lambda row: (row[0].__name__, row[1]),
)


def refused_value(rule: h.Refused) -> str:
    """A value the rule refuses (any value, unless it lists those it honours)."""
    return "GLACIER" if rule.unless else "AES256"


@pytest.mark.parametrize(
    ("endpoint", "name", "rule"),
    REFUSED,
    ids=lambda value: value if isinstance(value, str) else getattr(value, "__name__", ""),
)
def test_every_refused_header_is_refused_by_name(
    endpoint: type[r.Endpoint], name: str, rule: h.Refused
) -> None:
    with pytest.raises(S3Error) as raised:
        h.check_request_headers(endpoint, {"content-length": "0", name: refused_value(rule)})
    error = raised.value
    assert type(error) is rule.error
    assert error.message.startswith(name)
    assert name in error.extra.values()


def test_the_first_refused_header_in_request_order_is_named() -> None:
    with pytest.raises(NotImplemented_, match=r"^x-amz-server-side-encryption is"):
        h.check_request_headers(
            r.PutObject,
            {"x-amz-server-side-encryption": "AES256", "x-amz-object-lock-mode": "COMPLIANCE"},
        )


def test_an_sse_c_key_is_never_echoed() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    with pytest.raises(NotImplemented_) as raised:
        h.check_request_headers(r.GetObject, {"x-amz-server-side-encryption-customer-key": key})
    assert key not in raised.value.message
    assert key not in raised.value.extra.values()


@pytest.mark.parametrize(
    ("endpoint", "name", "value", "error"),
    [
        (r.PutObject, "x-amz-storage-class", "GLACIER", InvalidStorageClass),
        (r.PutObject, "x-amz-storage-class", "REDUCED_REDUNDANCY", InvalidStorageClass),
        (r.CopyObject, "x-amz-storage-class", "DEEP_ARCHIVE", InvalidStorageClass),
        (r.CreateMultipartUpload, "x-amz-storage-class", "GLACIER_IR", InvalidStorageClass),
        (r.CreateBucket, "x-amz-bucket-object-lock-enabled", "true", NotImplemented_),
        (r.CreateBucket, "x-amz-bucket-namespace", "account-regional", NotImplemented_),
        (r.PutObject, "x-amz-object-lock-legal-hold", "ON", InvalidRequest),
        (r.PutObject, "x-amz-object-lock-mode", "GOVERNANCE", InvalidRequest),
        (r.GetObject, "x-amz-server-side-encryption", "AES256", NotImplemented_),
        (r.ListObjectsV2, "x-amz-server-side-encryption-customer-algorithm", "AES256",
         NotImplemented_),
        (r.UploadPartCopy, "x-amz-copy-source-server-side-encryption-customer-algorithm",
         "AES256", NotImplemented_),
    ],
)  # fmt: skip
def test_values_relay_does_not_honour_are_refused(
    endpoint: type[r.Endpoint], name: str, value: str, error: type[S3Error]
) -> None:
    with pytest.raises(error, match=f"^{name}"):
        h.check_request_headers(endpoint, {name: value})


@pytest.mark.parametrize(
    ("endpoint", "name", "value"),
    [
        (r.PutObject, "x-amz-storage-class", "STANDARD"),
        (r.PutObject, "x-amz-storage-class", "standard"),
        (r.CreateBucket, "x-amz-bucket-object-lock-enabled", "false"),
        (r.CreateBucket, "x-amz-bucket-namespace", "global"),
        (r.CreateBucket, "x-amz-object-ownership", "BucketOwnerEnforced"),
        (r.CreateMultipartUpload, "x-amz-checksum-algorithm", "CRC32"),
        (r.CreateMultipartUpload, "x-amz-checksum-algorithm", "sha256"),
        (r.CreateMultipartUpload, "x-amz-checksum-type", "COMPOSITE"),
        (r.CreateMultipartUpload, "x-amz-checksum-algorithm", "CRC64NVME"),
        (r.CreateMultipartUpload, "x-amz-checksum-type", "FULL_OBJECT"),
        (r.PutObject, "x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
        (r.CompleteMultipartUpload, "x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
        (r.CompleteMultipartUpload, "x-amz-checksum-type", "FULL_OBJECT"),
        (r.CopyObject, "x-amz-object-annotation-directive", "EXCLUDE"),
        (r.DeleteObject, "x-amz-bypass-governance-retention", "true"),
        (r.GetObject, "x-amz-request-payer", "requester"),
        # Not GetObject's: a storage class on a read asks nothing of it, as on S3.
        (r.GetObject, "x-amz-storage-class", "GLACIER"),
    ],
)
def test_values_relay_honours_pass(endpoint: type[r.Endpoint], name: str, value: str) -> None:
    h.check_request_headers(endpoint, {name: value})


# What boto3, the aws CLI, s3cmd and minio-py send on their own (and rclone's STANDARD).
CLIENT_DEFAULTS: list[tuple[type[r.Endpoint], dict[str, str]]] = [
    (r.PutObject, {
        "x-amz-acl": "private", "x-amz-storage-class": "STANDARD",
        "x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": "5", "x-amz-trailer": "x-amz-checksum-crc32",
        "content-md5": "XUFAKrxLKna5cZ2REBfFkg==", "expect": "100-continue",
        "content-encoding": "aws-chunked", "content-type": "text/plain",
        "x-amz-meta-mtime": "1700000000", "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ"),
        "user-agent": "aws-cli/1", "amz-sdk-invocation-id": "x", "amz-sdk-request": "attempt=1",
    }),
    (r.CreateMultipartUpload, {"x-amz-checksum-algorithm": "CRC32", "x-amz-acl": "private"}),
    (r.UploadPart, {"content-md5": "XUFAKrxLKna5cZ2REBfFkg==", "x-amz-checksum-crc32": "AAAAAA=="}),
    (r.CompleteMultipartUpload, {"content-type": "application/xml"}),
    (r.DeleteObjects, {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32",
                       "content-md5": "XUFAKrxLKna5cZ2REBfFkg=="}),
    (r.CreateBucket, {"x-amz-acl": "private"}),
    (r.CopyObject, {"x-amz-copy-source": "b/k", "x-amz-metadata-directive": "COPY",
                    "x-amz-storage-class": "STANDARD"}),
    (r.GetObject, {"range": "bytes=0-1", "x-amz-checksum-mode": "ENABLED"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("endpoint", "headers"), CLIENT_DEFAULTS, ids=[row[0].__name__ for row in CLIENT_DEFAULTS]
)
def test_what_clients_send_by_default_passes(
    endpoint: type[r.Endpoint], headers: dict[str, Any]
) -> None:
    h.check_request_headers(endpoint, headers)


def test_checksum_rows_follow_what_the_chunker_computes() -> None:
    from relay.chunker import Checksum

    for algorithm in h.AWS_CHECKSUM_ALGORITHMS:
        rule = h.rule_for(r.PutObject, f"x-amz-checksum-{algorithm}")
        computed = algorithm in {kind.value for kind in Checksum}
        assert isinstance(rule, h.Honoured) is computed, algorithm


# -- through S3App: refused before the body is read ------------------------------------


class UnreadableBody:
    """A request body that must never be read: a refusal comes before any byte."""

    reads = 0

    async def receive_some(self, max_bytes: int = 1 << 20) -> bytes:
        type(self).reads += 1
        raise AssertionError("the body of a refused request was read")


@pytest.mark.parametrize(
    ("method", "target", "header", "value", "status", "code"),
    [
        ("PUT", "/bkt/k", "x-amz-server-side-encryption", "AES256", 501, "NotImplemented"),
        ("PUT", "/bkt/k", "x-amz-server-side-encryption-customer-algorithm", "AES256", 501,
         "NotImplemented"),
        ("PUT", "/bkt/k", "x-amz-object-lock-mode", "COMPLIANCE", 400, "InvalidRequest"),
        ("PUT", "/bkt/k", "x-amz-storage-class", "GLACIER", 400, "InvalidStorageClass"),
        ("PUT", "/bkt/k?partNumber=1&uploadId=u", "x-amz-server-side-encryption-customer-key",
         "a2V5", 501, "NotImplemented"),
        ("PUT", "/newbucket", "x-amz-bucket-object-lock-enabled", "true", 501, "NotImplemented"),
    ],
)  # fmt: skip
async def test_a_refused_header_is_answered_before_the_body_is_read(
    engine: Engine, method: str, target: str, header: str, value: str, status: int, code: str
) -> None:
    app = S3App(engine, KEYS)
    await engine.create_bucket("bkt", owner="alice")
    UnreadableBody.reads = 0
    response = await app.handle(
        signed(method, target, headers=[(header, value)], content_length=1 << 20),
        UnreadableBody(),  # type: ignore[arg-type]
    )
    assert UnreadableBody.reads == 0
    assert response.status == status
    assert isinstance(response.body, bytes)
    assert f"<Code>{code}</Code>".encode() in response.body
    assert header.encode() in response.body
    assert [record.name for record in await engine.list_buckets()] == ["bkt"]
    keys, _ = await engine.list_keys("bkt", prefix="", start_after=b"", limit=10)
    assert keys == []
