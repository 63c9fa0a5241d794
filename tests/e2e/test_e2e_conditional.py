"""Conditional requests against a real relay: If-Match, If-None-Match, If-Modified-Since and
If-Unmodified-Since on GET and HEAD (304 / 412 and AWS's precedence rules), and conditional
writes (If-None-Match: * and If-Match on PUT and CompleteMultipartUpload), decided inside the
bucket's writer so that of two racing writers exactly one wins.

Reads are sent raw (signed with botocore's SigV4 signer) so a test sees the status line, the
headers and the body exactly as sent; writes go through boto3 in the three checksum modes,
plus raw requests from threads for the races. Expected ETags are computed here (hashlib).
"""

from __future__ import annotations

import datetime
import threading
from email.utils import format_datetime, parsedate_to_datetime
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
from test_e2e_errors import Reply, signed

RACERS = 8


@pytest.fixture
def stored(relay_server: RelayProcess, bucket: str) -> tuple[str, bytes, str, str]:
    """An object ``k`` in ``bucket``: (path, body, quoted ETag, Last-Modified as sent)."""
    body = pattern(10_000, seed=11)
    path = f"/{bucket}/k"
    assert signed(relay_server, "PUT", path, body).status == 200
    head = signed(relay_server, "HEAD", path)
    assert head.status == 200, head
    assert head.headers["etag"] == quoted_md5(body)
    return path, body, head.headers["etag"], head.headers["last-modified"]


def a_day_before(http_date: str) -> str:
    earlier = parsedate_to_datetime(http_date) - datetime.timedelta(days=1)
    return format_datetime(earlier, usegmt=True)


def assert_not_modified(reply: Reply, etag: str) -> None:
    assert reply.status == 304, f"expected 304 Not Modified, got {reply.status}: {reply.body!r}"
    assert reply.body == b"", "a 304 has no body"
    # RFC 7232 4.1: a 304 carries the ETag a 200 would have carried.
    assert reply.headers.get("etag") == etag, reply.headers


def assert_precondition_failed(reply: Reply, method: str) -> None:
    assert reply.status == 412, f"expected 412 Precondition Failed, got {reply.status}"
    if method == "GET":
        assert reply.error()["Code"] == "PreconditionFailed"
    else:
        assert reply.body == b"", "a HEAD answer has no body"


# -- GET and HEAD ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_match_with_the_etag_serves_the_object(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, body, etag, _ = stored
    reply = signed(relay_server, method, path, headers={"If-Match": etag})
    assert reply.status == 200, reply
    assert reply.body == (body if method == "GET" else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_match_with_another_etag_is_412(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, *_ = stored
    reply = signed(relay_server, method, path, headers={"If-Match": quoted_md5(b"other")})
    assert_precondition_failed(reply, method)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_with_the_etag_is_304(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, _, etag, _ = stored
    assert_not_modified(signed(relay_server, method, path, headers={"If-None-Match": etag}), etag)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_with_another_etag_serves_the_object(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, body, _, _ = stored
    reply = signed(relay_server, method, path, headers={"If-None-Match": quoted_md5(b"x")})
    assert reply.status == 200, reply
    assert reply.body == (body if method == "GET" else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_modified_since_its_own_last_modified_is_304(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    # A client sends back the Last-Modified it was given: at one-second resolution the object
    # has not been modified since then (RFC 7232 3.3: "earlier or equal" means not modified).
    path, _, etag, last_modified = stored
    reply = signed(relay_server, method, path, headers={"If-Modified-Since": last_modified})
    assert_not_modified(reply, etag)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_modified_since_an_earlier_date_serves_the_object(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, _, _, last_modified = stored
    earlier = a_day_before(last_modified)
    reply = signed(relay_server, method, path, headers={"If-Modified-Since": earlier})
    assert reply.status == 200, reply


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_unmodified_since_an_earlier_date_is_412(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, _, _, last_modified = stored
    earlier = a_day_before(last_modified)
    reply = signed(relay_server, method, path, headers={"If-Unmodified-Since": earlier})
    assert_precondition_failed(reply, method)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_unmodified_since_its_own_last_modified_serves_the_object(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    path, _, _, last_modified = stored
    reply = signed(relay_server, method, path, headers={"If-Unmodified-Since": last_modified})
    assert reply.status == 200, reply


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_true_if_match_wins_over_false_if_unmodified_since(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    # GetObject / HeadObject reference: If-Match true and If-Unmodified-Since false -> 200 OK.
    path, body, etag, last_modified = stored
    headers = {"If-Match": etag, "If-Unmodified-Since": a_day_before(last_modified)}
    reply = signed(relay_server, method, path, headers=headers)
    assert reply.status == 200, reply
    assert reply.body == (body if method == "GET" else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_false_if_none_match_wins_over_true_if_modified_since(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str], method: str
) -> None:
    # GetObject / HeadObject reference: If-None-Match false and If-Modified-Since true -> 304.
    path, _, etag, last_modified = stored
    headers = {"If-None-Match": etag, "If-Modified-Since": a_day_before(last_modified)}
    assert_not_modified(signed(relay_server, method, path, headers=headers), etag)


def test_conditional_ranged_get_still_honours_the_condition(
    relay_server: RelayProcess, stored: tuple[str, bytes, str, str]
) -> None:
    path, body, etag, _ = stored
    ranged = signed(relay_server, "GET", path, headers={"If-Match": etag, "Range": "bytes=0-9"})
    assert ranged.status == 206, ranged
    assert ranged.body == body[:10]
    refused = signed(
        relay_server, "GET", path, headers={"If-Match": quoted_md5(b"x"), "Range": "bytes=0-9"}
    )
    assert_precondition_failed(refused, "GET")


def test_boto3_sees_304_and_412_as_client_errors(
    client: Any, stored: tuple[str, bytes, str, str]
) -> None:
    path, body, etag, _ = stored
    bucket, key = path.strip("/").split("/", 1)
    s3 = client
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == body
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    assert error_of(excinfo) == ("304", 304)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key=key, IfMatch=quoted_md5(b"x"))
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key=key, IfMatch=quoted_md5(b"x"))
    assert error_of(excinfo)[1] == 412


# -- conditional PUT ---------------------------------------------------------------------


def test_put_if_none_match_star_creates_an_absent_key(s3: Any, bucket: str) -> None:
    body = pattern(70_000, seed=1)
    put = s3.put_object(Bucket=bucket, Key="new", Body=body, IfNoneMatch="*")
    assert put["ETag"] == quoted_md5(body)
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == body


def test_put_if_none_match_star_on_an_existing_key_is_412_and_keeps_it(
    s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_put_if_match_with_the_current_etag_replaces(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfMatch=quoted_md5(b"first"))
    assert put["ETag"] == quoted_md5(b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"


def test_put_if_match_with_another_etag_is_412_and_keeps_the_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfMatch=quoted_md5(b"stale"))
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_put_if_match_on_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    # AWS answers If-Match on a key that does not exist with 404 NoSuchKey (conditional
    # writes user guide; observed against S3 in minio/minio#21526), and writes nothing.
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=quoted_md5(b"x"))
    assert error_of(excinfo) == ("NoSuchKey", 404)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def race(calls: list[Any]) -> list[Any]:
    """Run every call in its own thread, released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # reported by the test, not lost in the thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_racing_if_none_match_puts_have_exactly_one_winner(
    relay_server: RelayProcess, bucket: str
) -> None:
    bodies = [pattern(200_000, seed=100 + n) for n in range(RACERS)]
    path = f"/{bucket}/contended"
    replies = race(
        [
            lambda body=body: signed(relay_server, "PUT", path, body, {"If-None-Match": "*"})
            for body in bodies
        ]
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [412] * (RACERS - 1), statuses
    winner = next(n for n, reply in enumerate(replies) if reply.status == 200)
    for reply in replies:
        if reply.status == 412:
            assert reply.error()["Code"] == "PreconditionFailed"
    assert signed(relay_server, "GET", path).body == bodies[winner]


def test_racing_if_match_puts_have_exactly_one_winner(
    relay_server: RelayProcess, bucket: str
) -> None:
    path = f"/{bucket}/contended"
    assert signed(relay_server, "PUT", path, b"original").status == 200
    bodies = [pattern(100_000, seed=200 + n) for n in range(RACERS)]
    expected = {"If-Match": quoted_md5(b"original")}
    replies = race(
        [lambda body=body: signed(relay_server, "PUT", path, body, expected) for body in bodies]
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [412] * (RACERS - 1), statuses
    winner = next(n for n, reply in enumerate(replies) if reply.status == 200)
    assert signed(relay_server, "GET", path).body == bodies[winner]


# -- conditional CompleteMultipartUpload -------------------------------------------------


def start_upload(s3: Any, bucket: str, key: str) -> tuple[str, list[Any], bytes]:
    parts = [pattern(5 * MiB, seed=7), b"tail"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    return upload_id, upload_parts(s3, bucket, key, upload_id, parts), b"".join(parts)


def test_complete_if_none_match_star_creates_an_absent_key(s3: Any, bucket: str) -> None:
    upload_id, completed, body = start_upload(s3, bucket, "mp")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": completed},
        IfNoneMatch="*",
    )
    assert done["ETag"] == multipart_etag([body[: 5 * MiB], b"tail"])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == body


def test_complete_if_none_match_star_on_an_existing_key_is_412(s3: Any, bucket: str) -> None:
    upload_id, completed, _ = start_upload(s3, bucket, "mp")
    s3.put_object(Bucket=bucket, Key="mp", Body=b"got there first")
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            MultipartUpload={"Parts": completed},
            IfNoneMatch="*",
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"got there first"


def test_complete_if_match_with_the_current_etag_replaces(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mp", Body=b"old")
    upload_id, completed, body = start_upload(s3, bucket, "mp")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": completed},
        IfMatch=quoted_md5(b"old"),
    )
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == body


def test_complete_if_match_with_another_etag_is_412(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mp", Body=b"old")
    upload_id, completed, _ = start_upload(s3, bucket, "mp")
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            MultipartUpload={"Parts": completed},
            IfMatch=quoted_md5(b"stale"),
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"old"
