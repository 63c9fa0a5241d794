"""Checksums, all of them, against a real relay: boto3 (botocore with awscrt, so CRC32C and
CRC64NVME too) and raw aws-chunked requests where a client would not send the mistake.

Every algorithm is verified on upload (a wrong value is BadDigest and stores nothing),
stored, and returned on GET / HEAD with ``ChecksumMode=ENABLED``; multipart uploads echo
the algorithm and checksum type chosen at Create, hold every part to it, and Complete
gives S3's COMPOSITE (checksum of the part checksums, ``-N``) or FULL_OBJECT (the CRC of
the whole object) checksum. Expected values are computed over the whole bytes, never by
relay's own combination of parts (CRC64NVME by awscrt's CRC, which the chunker's tests
check against a reference built from the published parameters).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import zlib
from typing import Any

import crc_reference
import google_crc32c
import pytest
from awscrt import checksums as crt_checksums
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY, RelayProcess, boto_client

MiB = 1 << 20
ALGORITHMS = [
    *("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "SHA512", "MD5"),
    *("XXHASH64", "XXHASH3", "XXHASH128"),
]
# botocore computes every algorithm but MD5; an MD5 checksum is sent as a value.
COMPUTED_BY_BOTOCORE = set(ALGORITHMS) - {"MD5"}
# Every (algorithm, type) S3 allows for a multipart upload.
MULTIPART_KINDS = [
    ("CRC32", "COMPOSITE"),
    ("CRC32", "FULL_OBJECT"),
    ("CRC32C", "COMPOSITE"),
    ("CRC32C", "FULL_OBJECT"),
    ("CRC64NVME", "FULL_OBJECT"),
    ("SHA1", "COMPOSITE"),
    ("SHA256", "COMPOSITE"),
    ("SHA512", "COMPOSITE"),
    ("MD5", "COMPOSITE"),
    ("XXHASH64", "COMPOSITE"),
    ("XXHASH3", "COMPOSITE"),
    ("XXHASH128", "COMPOSITE"),
]


def digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return google_crc32c.value(data).to_bytes(4, "big")
    if algorithm == "CRC64NVME":
        return crt_checksums.crc64nvme(data).to_bytes(8, "big")
    if algorithm.startswith("XXHASH"):
        return crc_reference.xxhash(data, algorithm.lower())
    return hashlib.new(algorithm.lower(), data).digest()


def checksum_argument(algorithm: str, data: bytes) -> dict[str, str]:
    """Ask botocore to compute the checksum, or give MD5's value (botocore has no MD5)."""
    if algorithm in COMPUTED_BY_BOTOCORE:
        return {"ChecksumAlgorithm": algorithm}
    return {f"Checksum{algorithm}": b64(digest(algorithm, data))}


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def pattern(size: int, seed: int = 0) -> bytes:
    """Reproducible bytes that do not repeat (a SHA-256 counter stream)."""
    blocks = [hashlib.sha256(f"{seed}:{n}".encode()).digest() for n in range((size + 31) // 32)]
    return b"".join(blocks)[:size]


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = excinfo.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], status, response["Error"].get("Message", "")


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = response["ResponseMetadata"]["HTTPHeaders"]
    return headers


@pytest.fixture(scope="module")
def clients(relay_server: RelayProcess) -> dict[str, Any]:
    """botocore's defaults over http (checksum headers), and as over TLS (trailers)."""
    return {
        "header": boto_client(relay_server),
        "trailer": boto_client(relay_server, trailer_checksums=True),
        "plain": boto_client(relay_server, request_checksum_calculation="when_required"),
    }


@pytest.fixture
def s3(clients: dict[str, Any]) -> Any:
    return clients["header"]


@pytest.fixture
def bucket(s3: Any, bucket_name: str) -> str:
    s3.create_bucket(Bucket=bucket_name)
    return bucket_name


def assert_absent(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key=key)
    assert error_of(excinfo)[1] == 404


# -- PutObject ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "form"),
    [
        (algorithm, form)
        for algorithm in ALGORITHMS
        for form in ("header", "trailer")
        # botocore sends a value it was given (MD5's) as a header, never as a trailer.
        if form == "header" or algorithm in COMPUTED_BY_BOTOCORE
    ],
)
def test_put_checksum_is_verified_stored_and_returned(
    clients: dict[str, Any], bucket: str, algorithm: str, form: str
) -> None:
    s3 = clients[form]
    body = pattern(300_000, seed=1)
    expected = b64(digest(algorithm, body))
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, **checksum_argument(algorithm, body))
    assert put[f"Checksum{algorithm}"] == expected
    assert put["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (expected, "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (got[f"Checksum{algorithm}"], got["ChecksumType"]) == (expected, "FULL_OBJECT")
    assert got["Body"].read() == body  # botocore checks the body against the checksum
    plain = s3.head_object(Bucket=bucket, Key="k")
    assert not [name for name in headers_of(plain) if name.startswith("x-amz-checksum")]
    attributes = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum"])
    assert attributes["Checksum"] == {
        f"Checksum{algorithm}": expected,
        "ChecksumType": "FULL_OBJECT",
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_checksum_is_bad_digest_and_stores_nothing(
    s3: Any, bucket: str, algorithm: str
) -> None:
    wrong = b64(digest(algorithm, b"another body"))
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"the body", **{f"Checksum{algorithm}": wrong})
    assert error_of(excinfo) == (
        "BadDigest",
        400,
        f"The {algorithm} you specified did not match the calculated checksum.",
    )
    assert_absent(s3, bucket, "k")


@pytest.mark.parametrize(
    ("algorithm", "value"),
    [
        ("CRC32", "short==="),  # not base64
        ("CRC32", "shrt"),  # 3 bytes
        ("CRC32", "toolong="),  # 5 bytes
        ("CRC32", "^^^^^^=="),
        ("CRC32", "y/Q5Jh=="),  # y/Q5Jg== with non-zero padding bits
        ("CRC64NVME", "AAAAAA=="),  # a CRC32's length
        ("SHA256", b64(bytes(20))),  # a SHA-1's length
    ],
)
def test_malformed_checksum_value_is_invalid_request(
    s3: Any, bucket: str, algorithm: str, value: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"body", **{f"Checksum{algorithm}": value})
    assert error_of(excinfo) == (
        "InvalidRequest",
        400,
        f"Value for x-amz-checksum-{algorithm.lower()} header is invalid.",
    )
    assert_absent(s3, bucket, "k")


def test_two_checksums_are_refused(s3: Any, bucket: str) -> None:
    body = b"123456789"
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(
            Bucket=bucket,
            Key="k",
            Body=body,
            ChecksumCRC32=b64(digest("CRC32", body)),
            ChecksumSHA1=b64(digest("SHA1", body)),
        )
    assert error_of(excinfo)[:2] == ("InvalidRequest", 400)
    assert_absent(s3, bucket, "k")


def test_a_range_of_the_object_carries_no_whole_object_checksum(s3: Any, bucket: str) -> None:
    body = pattern(1000)
    s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="CRC64NVME")
    part = s3.get_object(Bucket=bucket, Key="k", Range="bytes=1-99", ChecksumMode="ENABLED")
    assert "ChecksumCRC64NVME" not in part
    whole = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-999", ChecksumMode="ENABLED")
    assert whole["ChecksumCRC64NVME"] == b64(digest("CRC64NVME", body))


# -- multipart ----------------------------------------------------------------------------


def upload_parts(
    s3: Any, bucket: str, key: str, upload_id: str, algorithm: str, parts: list[bytes]
) -> list[dict[str, Any]]:
    completed = []
    for number, data in enumerate(parts, start=1):
        response = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            **checksum_argument(algorithm, data),
        )
        assert response[f"Checksum{algorithm}"] == b64(digest(algorithm, data))
        completed.append(
            {
                "PartNumber": number,
                "ETag": response["ETag"],
                f"Checksum{algorithm}": response[f"Checksum{algorithm}"],
            }
        )
    return completed


@pytest.mark.parametrize("form", ["header", "trailer"])
@pytest.mark.parametrize(("algorithm", "checksum_type"), MULTIPART_KINDS)
def test_multipart_checksum_of_each_algorithm_and_type(
    clients: dict[str, Any], bucket: str, algorithm: str, checksum_type: str, form: str
) -> None:
    s3 = clients[form]
    parts = [pattern(5 * MiB, seed=2), pattern(70_000, seed=3)]
    create = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm, ChecksumType=checksum_type
    )
    assert (create["ChecksumAlgorithm"], create["ChecksumType"]) == (algorithm, checksum_type)
    upload_id = create["UploadId"]
    completed = upload_parts(s3, bucket, "mp", upload_id, algorithm, parts)

    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == (algorithm, checksum_type)
    assert [part[f"Checksum{algorithm}"] for part in listed["Parts"]] == [
        b64(digest(algorithm, data)) for data in parts
    ]

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": completed}
    )
    if checksum_type == "COMPOSITE":
        joined = b"".join(digest(algorithm, data) for data in parts)
        expected = f"{b64(digest(algorithm, joined))}-{len(parts)}"
    else:
        expected = b64(digest(algorithm, b"".join(parts)))
    assert (done[f"Checksum{algorithm}"], done["ChecksumType"]) == (expected, checksum_type)

    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (expected, checksum_type)
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["Body"].read() == b"".join(parts)  # a FULL_OBJECT checksum is checked here
    second = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, ChecksumMode="ENABLED")
    assert second[f"Checksum{algorithm}"] == b64(digest(algorithm, parts[1]))
    assert second["Body"].read() == parts[1]

    attributes = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["Checksum", "ObjectParts"]
    )
    assert attributes["Checksum"] == {
        f"Checksum{algorithm}": expected,
        "ChecksumType": checksum_type,
    }
    assert [part[f"Checksum{algorithm}"] for part in attributes["ObjectParts"]["Parts"]] == [
        b64(digest(algorithm, data)) for data in parts
    ]


@pytest.mark.parametrize(
    ("algorithm", "checksum_type", "message"),
    [
        (
            "CRC64NVME",
            "COMPOSITE",
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
        ),
        (
            "SHA1",
            "FULL_OBJECT",
            "The FULL_OBJECT checksum type cannot be used with the sha1 checksum algorithm.",
        ),
        (
            "SHA256",
            "FULL_OBJECT",
            "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.",
        ),
        ("CRC32", "TEST", "Value for x-amz-checksum-type header is invalid."),
        ("nope", None, None),
    ],
)
def test_create_refuses_what_s3_refuses(
    clients: dict[str, Any],
    bucket: str,
    algorithm: str,
    checksum_type: str | None,
    message: str | None,
) -> None:
    s3 = clients["plain"]
    extra = {} if checksum_type is None else {"ChecksumType": checksum_type}
    with pytest.raises(ClientError) as excinfo:
        s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=algorithm, **extra)
    code, status, text = error_of(excinfo)
    assert (code, status) == ("InvalidRequest", 400)
    assert message is None or text == message
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_an_upload_without_an_algorithm_echoes_none(s3: Any, bucket: str) -> None:
    create = s3.create_multipart_upload(Bucket=bucket, Key="k")
    assert "ChecksumAlgorithm" not in create
    assert "ChecksumType" not in create


def test_a_part_without_the_uploads_checksum_is_refused(
    clients: dict[str, Any], bucket: str
) -> None:
    s3 = clients["plain"]  # sends no checksum unless asked
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"data")
    assert error_of(excinfo) == (
        "InvalidRequest",
        400,
        "Checksum Type mismatch occurred, expected checksum Type: sha256, actual checksum Type:"
        " null",
    )
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            PartNumber=1,
            Body=b"data",
            ChecksumCRC32=b64(digest("CRC32", b"data")),
        )
    assert error_of(excinfo)[2].endswith(
        "expected checksum Type: sha256, actual checksum Type: crc32"
    )
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)


def test_a_part_with_a_wrong_checksum_is_bad_digest(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC64NVME")[
        "UploadId"
    ]
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            PartNumber=1,
            Body=b"data",
            ChecksumCRC64NVME=b64(digest("CRC64NVME", b"other")),
        )
    assert error_of(excinfo)[:2] == ("BadDigest", 400)
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)


def test_parts_of_an_upload_without_an_algorithm_may_carry_checksums(s3: Any, bucket: str) -> None:
    # S3 verifies them; the object gets no checksum, as the upload chose none.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    response = s3.upload_part(
        Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"data"
    )
    assert response["ChecksumCRC32"] == b64(digest("CRC32", b"data"))
    parts = [
        {"PartNumber": 1, "ETag": response["ETag"], "ChecksumCRC32": response["ChecksumCRC32"]}
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert "ChecksumCRC32" not in done
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def composite_upload(s3: Any, bucket: str, key: str) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    return upload_id, upload_parts(s3, bucket, key, upload_id, "CRC32", [b"123456789"])


def test_complete_of_a_composite_upload_needs_every_part_checksum(s3: Any, bucket: str) -> None:
    upload_id, parts = composite_upload(s3, bucket, "k")
    bare = [{"PartNumber": part["PartNumber"], "ETag": part["ETag"]} for part in parts]
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": bare}
        )
    assert error_of(excinfo) == (
        "InvalidRequest",
        400,
        "The upload was created using a crc32 checksum. The complete request must include the"
        " checksum for each part. It was missing for part 1 in the request.",
    )
    assert_absent(s3, bucket, "k")


@pytest.mark.parametrize(
    ("value", "code"),
    [("z/Q5Jg==", "InvalidPart"), ("y/Q5Jh==", "InvalidArgument"), ("nonsense", "InvalidArgument")],
)
def test_complete_with_a_wrong_part_checksum_is_refused(
    s3: Any, bucket: str, value: str, code: str
) -> None:
    upload_id, parts = composite_upload(s3, bucket, "k")
    assert parts[0]["ChecksumCRC32"] == "y/Q5Jg=="  # S3's documented CRC32 of "123456789"
    parts[0]["ChecksumCRC32"] = value
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    assert error_of(excinfo)[:2] == (code, 400)
    assert_absent(s3, bucket, "k")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("7kxlUA==", None),  # S3's composite CRC32 of one part "123456789"
        ("7kxlUA==-1", None),
        ("7kxlUA==-2", "BadDigest"),
        ("8kxlUA==", "BadDigest"),
        ("7kxlUA==-a", "InvalidRequest"),
    ],
)
def test_complete_checks_the_whole_object_checksum_it_is_given(
    s3: Any, bucket: str, value: str, code: str | None
) -> None:
    upload_id, parts = composite_upload(s3, bucket, "k")
    call = {"Bucket": bucket, "Key": "k", "UploadId": upload_id, "ChecksumCRC32": value}
    if code is None:
        done = s3.complete_multipart_upload(**call, MultipartUpload={"Parts": parts})
        assert done["ChecksumCRC32"] == "7kxlUA==-1"
        return
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(**call, MultipartUpload={"Parts": parts})
    assert error_of(excinfo)[:2] == (code, 400)
    assert_absent(s3, bucket, "k")


def test_upload_part_copy_gets_the_uploads_checksum(s3: Any, bucket: str) -> None:
    source = pattern(10_000, seed=5)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC64NVME")[
        "UploadId"
    ]
    copied = s3.upload_part_copy(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
    )["CopyPartResult"]
    assert copied["ChecksumCRC64NVME"] == b64(digest("CRC64NVME", source))
    parts = [{"PartNumber": 1, "ETag": copied["ETag"]}]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert done["ChecksumCRC64NVME"] == b64(digest("CRC64NVME", source))


# -- aws-chunked trailers, raw ------------------------------------------------------------


def chunked(data: bytes, trailers: list[tuple[str, str]]) -> bytes:
    """An unsigned aws-chunked body: two chunks, the final one, then the trailers."""
    half = len(data) // 2
    body = b""
    for piece in (data[:half], data[half:]):
        body += b"%x\r\n%s\r\n" % (len(piece), piece)
    body += b"0\r\n" + b"".join(f"{name}:{value}\r\n".encode() for name, value in trailers)
    return body + b"\r\n"


def put_chunked(
    relay: RelayProcess, path: str, data: bytes, declared: str | None, body: bytes
) -> tuple[int, str]:
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "Content-Length": str(len(body)),
    }
    if declared is not None:
        headers["X-Amz-Trailer"] = declared
    request = AWSRequest(method="PUT", url=relay.endpoint + path, data=body, headers=headers)
    # botocore signs STREAMING-UNSIGNED-PAYLOAD-TRAILER for a checksum sent as a trailer.
    request.context["checksum"] = {"request_algorithm": {"in": "trailer"}}
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    connection = http.client.HTTPConnection(relay.host, relay.port, timeout=10)
    try:
        connection.request("PUT", path, body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        reply = response.read().decode()
    finally:
        connection.close()
    code = reply.split("<Code>")[1].split("</Code>")[0] if "<Code>" in reply else ""
    return response.status, code


CRC32_HEADER = "x-amz-checksum-crc32"
CRC32_123456789 = "y/Q5Jg=="  # S3's documented CRC32 of b"123456789"


@pytest.mark.parametrize(
    ("declared", "trailers", "expected"),
    [
        (CRC32_HEADER, [(CRC32_HEADER, "right")], (200, "")),
        (CRC32_HEADER, [], (400, "MalformedTrailerError")),  # declared, never sent
        (None, [(CRC32_HEADER, "right")], (400, "MalformedTrailerError")),  # not declared
        (CRC32_HEADER, [("x-amz-checksum-sha1", "right")], (400, "MalformedTrailerError")),
        (CRC32_HEADER, [(CRC32_HEADER, "AAAAAA==")], (400, "BadDigest")),
        (CRC32_HEADER, [(CRC32_HEADER, "not base64!")], (400, "InvalidRequest")),
        ("x-amz-checksum-crc33", [], (400, "InvalidRequest")),
    ],
    ids=["right", "missing", "undeclared", "another", "wrong", "malformed", "unknown"],
)
def test_trailers_are_held_to_what_x_amz_trailer_declared(
    relay_server: RelayProcess,
    s3: Any,
    bucket: str,
    declared: str | None,
    trailers: list[tuple[str, str]],
    expected: tuple[int, str],
) -> None:
    data = pattern(20_000, seed=6)
    right = {
        CRC32_HEADER: b64(digest("CRC32", data)),
        "x-amz-checksum-sha1": b64(digest("SHA1", data)),
    }
    sent = [(name, right[name] if value == "right" else value) for name, value in trailers]
    reply = put_chunked(relay_server, f"/{bucket}/k", data, declared, chunked(data, sent))
    assert reply == expected
    if expected[0] == 200:
        head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        assert head["ChecksumCRC32"] == right[CRC32_HEADER]
    else:
        assert_absent(s3, bucket, "k")


def test_parts_of_a_checksummed_upload_must_be_numbered_from_one_without_gaps(
    s3: Any, bucket: str
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    response = s3.upload_part(
        Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=b"123456789"
    )
    parts = [{"PartNumber": 2, "ETag": response["ETag"], "ChecksumCRC32": CRC32_123456789}]
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    assert error_of(excinfo)[:2] == ("InvalidPartOrder", 400)
    assert_absent(s3, bucket, "k")
