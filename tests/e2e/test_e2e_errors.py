"""Errors a real client can meet, sent raw where a client would refuse to send them.

Requests are signed with botocore's own SigV4 signer (``S3SigV4Auth`` on an
``AWSRequest``), then sent with ``http.client`` or a raw socket, so a test can sign one
thing and send another, lie about the date, or hang up half way. Every error must be the
S3 XML document (Code, Message, Resource, RequestId) and every response must carry
``x-amz-request-id``.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import os
import re
import socket
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY, RelayProcess, boto_client

MiB = 1 << 20
SOCKET_TIMEOUT_SECONDS = 10.0
S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """The error document's fields; fails unless it is one."""
        root = ElementTree.fromstring(self.body)
        assert root.tag == "Error", self.body
        fields = {child.tag.removeprefix(S3_NAMESPACE): child.text or "" for child in root}
        for name in ("Code", "Message", "Resource", "RequestId"):
            assert name in fields, (name, self.body)
        assert fields["Message"], self.body
        assert fields["RequestId"] == self.headers["x-amz-request-id"]
        return fields


def sign(
    relay: RelayProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> dict[str, str]:
    """The headers botocore would send for this request (Host, date, hash, Authorization)."""
    request = AWSRequest(
        method=method, url=relay.endpoint + path, data=body, headers=dict(headers or {})
    )
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def send(
    relay: RelayProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Reply:
    connection = http.client.HTTPConnection(relay.host, relay.port, timeout=SOCKET_TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Reply(
            response.status,
            response.reason,
            {name.lower(): value for name, value in response.getheaders()},
            data,
        )
    finally:
        connection.close()


def signed(
    relay: RelayProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    **credentials: Any,
) -> Reply:
    return send(relay, method, path, body, sign(relay, method, path, body, headers, **credentials))


@pytest.fixture
def bucket(relay_server: RelayProcess, bucket_name: str) -> str:
    reply = signed(relay_server, "PUT", f"/{bucket_name}")
    assert reply.status == 200, reply
    return bucket_name


def keys_in(relay: RelayProcess, bucket: str) -> list[str]:
    listing = boto_client(relay).list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def assert_missing(relay: RelayProcess, bucket: str, key: str) -> None:
    reply = signed(relay, "HEAD", f"/{bucket}/{key}")
    assert reply.status == 404, reply
    assert reply.body == b""


# -- authentication ----------------------------------------------------------------------


def test_unknown_access_key_is_invalid_access_key_id(
    relay_server: RelayProcess, bucket: str
) -> None:
    reply = signed(relay_server, "GET", f"/{bucket}", access_key="NOBODY")
    assert reply.status == 403
    assert reply.error()["Code"] == "InvalidAccessKeyId"


def test_wrong_secret_is_signature_does_not_match(relay_server: RelayProcess, bucket: str) -> None:
    reply = signed(relay_server, "GET", f"/{bucket}", secret_key="not the secret")
    assert reply.status == 403
    error = reply.error()
    assert error["Code"] == "SignatureDoesNotMatch"
    assert error["Resource"] == f"/{bucket}"


def test_tampered_request_is_signature_does_not_match(
    relay_server: RelayProcess, bucket: str
) -> None:
    headers = sign(relay_server, "GET", f"/{bucket}?prefix=a")
    reply = send(relay_server, "GET", f"/{bucket}?prefix=b", headers=headers)
    assert reply.status == 403
    assert reply.error()["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("minutes", [20, -20])
def test_request_twenty_minutes_off_is_too_skewed(
    relay_server: RelayProcess, bucket: str, monkeypatch: pytest.MonkeyPatch, minutes: int
) -> None:
    skewed = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(
        minutes=minutes
    )
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *_, **__: skewed)
    headers = sign(relay_server, "GET", f"/{bucket}")
    monkeypatch.undo()
    reply = send(relay_server, "GET", f"/{bucket}", headers=headers)
    assert reply.status == 403
    assert reply.error()["Code"] == "RequestTimeTooSkewed"


def test_anonymous_request_is_access_denied(relay_server: RelayProcess, bucket: str) -> None:
    assert signed(relay_server, "PUT", f"/{bucket}/k", b"data").status == 200
    for method, path in (("GET", f"/{bucket}/k"), ("GET", f"/{bucket}"), ("GET", "/")):
        reply = send(relay_server, method, path)
        assert reply.status == 403, path
        error = reply.error()
        assert error["Code"] == "AccessDenied", path
        assert b"data" not in reply.body
    anonymous_put = send(relay_server, "PUT", f"/{bucket}/anon", b"sneaky")
    assert anonymous_put.status == 403
    assert_missing(relay_server, bucket, "anon")


def test_body_not_matching_x_amz_content_sha256_is_refused_and_not_stored(
    relay_server: RelayProcess, bucket: str
) -> None:
    headers = sign(relay_server, "PUT", f"/{bucket}/k", b"signed body")
    reply = send(relay_server, "PUT", f"/{bucket}/k", b"sent body!!", headers)
    assert reply.status == 400
    assert reply.error()["Code"] == "XAmzContentSHA256Mismatch"
    assert_missing(relay_server, bucket, "k")
    assert keys_in(relay_server, bucket) == []


def test_signed_body_hash_is_accepted(relay_server: RelayProcess, bucket: str) -> None:
    body = os.urandom(3 * MiB + 5)
    reply = signed(relay_server, "PUT", f"/{bucket}/k", body)
    assert reply.status == 200
    assert reply.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert signed(relay_server, "GET", f"/{bucket}/k").body == body


# -- buckets and keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["ab", "Upper-Case", "under_score", "-leading-dash", "a" * 64, "192.168.5.4", "a..b"]
)
def test_invalid_bucket_name_is_refused(relay_server: RelayProcess, name: str) -> None:
    reply = signed(relay_server, "PUT", f"/{name}")
    assert reply.status == 400
    assert reply.error()["Code"] == "InvalidBucketName"
    listed = signed(relay_server, "GET", "/")
    assert f"<Name>{name}</Name>".encode() not in listed.body


def test_creating_an_owned_bucket_again_in_us_east_1_is_200(
    relay_server: RelayProcess, bucket: str
) -> None:
    # S3's legacy answer in us-east-1; other regions answer 409 BucketAlreadyOwnedByYou
    # (tests/s3/test_s3_conformance.py).
    assert signed(relay_server, "PUT", f"/{bucket}").status == 200


def test_deleting_a_non_empty_bucket_is_409(relay_server: RelayProcess, bucket: str) -> None:
    assert signed(relay_server, "PUT", f"/{bucket}/k", b"x").status == 200
    reply = signed(relay_server, "DELETE", f"/{bucket}")
    assert reply.status == 409
    error = reply.error()
    assert error["Code"] == "BucketNotEmpty"
    assert error["Resource"] == f"/{bucket}"
    assert keys_in(relay_server, bucket) == ["k"]
    assert signed(relay_server, "DELETE", f"/{bucket}/k").status == 204
    assert signed(relay_server, "DELETE", f"/{bucket}").status == 204
    assert signed(relay_server, "HEAD", f"/{bucket}").status == 404


def test_missing_key_is_no_such_key(relay_server: RelayProcess, bucket: str) -> None:
    reply = signed(relay_server, "GET", f"/{bucket}/no/such%20key")
    assert reply.status == 404
    error = reply.error()
    assert error["Code"] == "NoSuchKey"
    assert error["Resource"] == f"/{bucket}/no/such%20key"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/key"), ("PUT", "/key"), ("DELETE", ""), ("GET", "?list-type=2")],
)
def test_missing_bucket_is_no_such_bucket(
    relay_server: RelayProcess, bucket_name: str, method: str, suffix: str
) -> None:
    reply = signed(
        relay_server, method, f"/{bucket_name}{suffix}", b"x" if method == "PUT" else b""
    )
    assert reply.status == 404
    assert reply.error()["Code"] == "NoSuchBucket"


@pytest.mark.parametrize(
    ("method", "query"),
    [("PUT", "website"), ("PUT", "lifecycle"), ("PUT", "encryption")],
)
def test_unimplemented_operation_is_501(
    relay_server: RelayProcess, bucket: str, method: str, query: str
) -> None:
    body = b'{"Version": "2012-10-17", "Statement": []}' if method == "PUT" else b""
    reply = signed(relay_server, method, f"/{bucket}?{query}", body)
    assert reply.status == 501
    assert reply.error()["Code"] == "NotImplemented"


def test_every_response_carries_a_request_id(relay_server: RelayProcess, bucket: str) -> None:
    replies = [
        signed(relay_server, "PUT", f"/{bucket}/k", b"x"),
        signed(relay_server, "GET", f"/{bucket}/k"),
        signed(relay_server, "HEAD", f"/{bucket}/k"),
        signed(relay_server, "GET", f"/{bucket}?list-type=2"),
        signed(relay_server, "GET", "/"),
        signed(relay_server, "DELETE", f"/{bucket}/k"),
        signed(relay_server, "GET", f"/{bucket}/k"),
        send(relay_server, "GET", f"/{bucket}/k"),
    ]
    ids = [reply.headers.get("x-amz-request-id") for reply in replies]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)


def test_status_line_carries_a_reason_phrase(relay_server: RelayProcess, bucket: str) -> None:
    assert signed(relay_server, "GET", f"/{bucket}/missing").reason == "Not Found"
    assert signed(relay_server, "GET", f"/{bucket}?list-type=2").reason == "OK"


def test_client_error_from_boto3_has_the_document(relay_server: RelayProcess, bucket: str) -> None:
    s3 = boto_client(relay_server)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="nothing")
    error = excinfo.value.response["Error"]
    assert error["Code"] == "NoSuchKey"
    assert error["Key"] == "nothing"


# -- 100-continue and hang-ups, on a raw socket ------------------------------------------


def raw_head(relay: RelayProcess, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {relay.host}:{relay.port}",  # signed by botocore, sent by http.client
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def test_expect_100_continue_with_bad_signature_gets_403_without_100(
    relay_server: RelayProcess, bucket: str
) -> None:
    size = 50 * MiB  # announced, never sent: the answer must not wait for it
    headers = sign(
        relay_server,
        "PUT",
        f"/{bucket}/k",
        headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
        secret_key="wrong",
    )
    headers.update({"Content-Length": str(size), "Expect": "100-continue"})
    with socket.create_connection((relay_server.host, relay_server.port)) as sock:
        sock.settimeout(SOCKET_TIMEOUT_SECONDS)
        started = time.monotonic()
        sock.sendall(raw_head(relay_server, "PUT", f"/{bucket}/k", headers))
        response = read_response_head(sock)
        assert time.monotonic() - started < 5
        head, _, body = response.partition(b"\r\n\r\n")
        match = re.search(rb"(?im)^content-length: *(\d+)", head)
        assert match is not None, head
        length = int(match.group(1))
        while len(body) < length:
            piece = sock.recv(65536)
            assert piece, "connection closed before the error document"
            body += piece
    assert head.startswith(b"HTTP/1.1 403"), head  # the final answer, no 100 before it
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    assert_missing(relay_server, bucket, "k")


def test_expect_100_continue_with_good_signature_gets_100_then_stores(
    relay_server: RelayProcess, bucket: str
) -> None:
    body = os.urandom(100_000)
    headers = sign(relay_server, "PUT", f"/{bucket}/k", body)
    headers.update({"Content-Length": str(len(body)), "Expect": "100-continue"})
    with socket.create_connection((relay_server.host, relay_server.port)) as sock:
        sock.settimeout(SOCKET_TIMEOUT_SECONDS)
        sock.sendall(raw_head(relay_server, "PUT", f"/{bucket}/k", headers))
        interim = read_response_head(sock)
        assert interim.startswith(b"HTTP/1.1 100"), interim[:200]
        sock.sendall(body)
        final = read_response_head(sock)
        assert final.startswith(b"HTTP/1.1 200"), final[:200]
    assert signed(relay_server, "GET", f"/{bucket}/k").body == body


def test_cancelled_upload_commits_nothing(relay_server: RelayProcess, bucket: str) -> None:
    assert signed(relay_server, "PUT", f"/{bucket}/before", b"already here").status == 200
    body = os.urandom(10 * MiB)
    headers = sign(relay_server, "PUT", f"/{bucket}/cancelled", body)
    headers["Content-Length"] = str(len(body))
    with socket.create_connection((relay_server.host, relay_server.port)) as sock:
        sock.sendall(raw_head(relay_server, "PUT", f"/{bucket}/cancelled", headers))
        sock.sendall(body[: 3 * MiB])
    # The server notices the hang-up on its own schedule: look twice, a moment apart.
    assert_missing(relay_server, bucket, "cancelled")
    time.sleep(0.5)
    assert_missing(relay_server, bucket, "cancelled")
    assert keys_in(relay_server, bucket) == ["before"]
    # The same key can still be written in full afterwards.
    assert signed(relay_server, "PUT", f"/{bucket}/cancelled", body).status == 200
    assert signed(relay_server, "GET", f"/{bucket}/cancelled").body == body
