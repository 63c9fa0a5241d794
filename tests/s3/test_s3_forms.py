"""Browser form uploads (presigned POST) through S3App; botocore's presigner is the oracle."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from relay.bucket.engine import Engine
from relay.http import Request, Response
from relay.s3.app import S3App
from tests.s3.test_s3_app import KEYS, Body, body_of, call

BOUNDARY = "----formboundary7MA4YWxkTrZu0gW"
NOW = time.time()


def presigner(signature_version: str = "s3v4", user: str = "alice") -> Any:
    return boto3.client(
        "s3",
        endpoint_url="http://relay.test",
        region_name="us-east-1",
        aws_access_key_id=user,
        aws_secret_access_key=KEYS[user],
        config=Config(signature_version=signature_version),
    )


def presigned(
    key: str = "up/${filename}",
    fields: dict[str, str] | None = None,
    conditions: list[Any] | None = None,
    *,
    signature_version: str = "s3v4",
    user: str = "alice",
    expires: int = 600,
) -> dict[str, str]:
    post = presigner(signature_version, user).generate_presigned_post(
        "photos", key, Fields=fields, Conditions=conditions, ExpiresIn=expires
    )
    return dict(post["fields"])


def encode(
    fields: dict[str, str],
    file: bytes = b"form bytes",
    *,
    filename: str = "cat.png",
    after: dict[str, str] | None = None,
) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + file
        + b"\r\n"
    )
    parts += [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (after or {}).items()
    ]
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def form_request(body: bytes, content_type: str | None = None) -> Request:
    headers = [
        ("host", "relay.test"),
        ("content-type", content_type or f"multipart/form-data; boundary={BOUNDARY}"),
        ("content-length", str(len(body))),
        ("origin", "http://page.test"),
    ]
    return Request("POST", "/photos", "/photos", "", tuple(headers), "1.1", None)


@pytest.fixture
async def app(engine: Engine) -> S3App:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/photos")).status == 200
    return app


async def post(app: S3App, body: bytes, content_type: str | None = None) -> Response:
    return await app.handle(form_request(body, content_type), Body(body))  # type: ignore[arg-type]


async def error_of(response: Response) -> tuple[str, str]:
    text = (await body_of(response)).decode()
    code = text.partition("<Code>")[2].partition("</Code>")[0]
    message = text.partition("<Message>")[2].partition("</Message>")[0]
    return code, message.replace("&quot;", '"')


async def stored(app: S3App, key: str) -> bytes | None:
    response = await call(app, "GET", f"/photos/{key}")
    return await body_of(response) if response.status == 200 else None


async def test_a_sigv4_form_uploads_its_file_under_the_filename_with_201(app: S3App) -> None:
    fields = presigned(
        fields={"success_action_status": "201"}, conditions=[{"success_action_status": "201"}]
    )
    response = await post(app, encode(fields, b"\x89PNG cat"))
    assert response.status == 201
    body = await body_of(response)
    etag = hashlib.md5(b"\x89PNG cat").hexdigest()
    assert b"<Bucket>photos</Bucket><Key>up/cat.png</Key>" in body
    assert f'<ETag>"{etag}"</ETag>'.encode() in body
    assert dict(response.headers)["etag"] == f'"{etag}"'
    assert await stored(app, "up/cat.png") == b"\x89PNG cat"
    head = await call(app, "HEAD", "/photos/up/cat.png")
    assert dict(head.headers)["content-type"] == "image/png"  # the file part's type


async def test_a_sigv2_form_uploads_with_204_by_default(app: S3App) -> None:
    fields = presigned(key="v2.txt", signature_version="s3")
    assert "AWSAccessKeyId" in fields
    assert "signature" in fields
    response = await post(app, encode(fields, b"version two"))
    assert response.status == 204
    assert await stored(app, "v2.txt") == b"version two"


async def test_success_action_redirect_answers_303_with_bucket_key_and_etag(app: S3App) -> None:
    redirect = "http://page.test/done?from=form"
    fields = presigned(
        key="r.txt",
        fields={"success_action_redirect": redirect},
        conditions=[{"success_action_redirect": redirect}],
    )
    response = await post(app, encode(fields, b"r"))
    assert response.status == 303
    location = urlsplit(dict(response.headers)["location"])
    assert location.netloc == "page.test"
    assert location.path == "/done"
    query = parse_qs(location.query)
    assert query["bucket"] == ["photos"]
    assert query["key"] == ["r.txt"]
    assert query["etag"] == [f'"{hashlib.md5(b"r").hexdigest()}"']
    assert query["from"] == ["form"]


async def test_metadata_content_type_tagging_and_checksum_fields_are_kept(app: S3App) -> None:
    data = b"annotated"
    sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    extra = {
        "Content-Type": "text/plain",
        "x-amz-meta-camera": "nikon",
        "tagging": "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>",
        "x-amz-checksum-sha256": sha256,
        "acl": "private",
    }
    fields = presigned(key="meta.txt", fields=extra, conditions=[{k: v} for k, v in extra.items()])
    assert (await post(app, encode(fields, data))).status == 204
    head = dict((await call(app, "HEAD", "/photos/meta.txt")).headers)
    assert head["content-type"] == "text/plain"
    assert head["x-amz-meta-camera"] == "nikon"
    assert head["x-amz-tagging-count"] == "1"
    attributes = await call(app, "GET", "/photos/meta.txt?tagging")
    assert b"<Key>k</Key><Value>v</Value>" in await body_of(attributes)


async def test_a_wrong_checksum_field_commits_nothing(app: S3App) -> None:
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    fields = presigned(
        key="bad.txt",
        fields={"x-amz-checksum-sha256": wrong},
        conditions=[{"x-amz-checksum-sha256": wrong}],
    )
    response = await post(app, encode(fields, b"data"))
    assert response.status == 400
    assert (await error_of(response))[0] == "BadDigest"
    assert await stored(app, "bad.txt") is None


async def test_an_expired_policy_is_refused(engine: Engine) -> None:
    app = S3App(engine, KEYS, clock=lambda: NOW + 3600)
    await call(app, "PUT", "/photos")
    response = await post(app, encode(presigned(key="late.txt", expires=60)))
    assert response.status == 403
    assert await error_of(response) == (
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    )


async def test_a_field_no_condition_covers_is_refused(app: S3App) -> None:
    fields = presigned(key="x.txt")
    fields["x-amz-meta-sneaky"] = "1"
    fields["x-ignore-this"] = "fine"
    response = await post(app, encode(fields))
    assert response.status == 403
    assert await error_of(response) == (
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky",
    )
    assert await stored(app, "x.txt") is None


async def test_a_failed_condition_is_refused_with_its_text(app: S3App) -> None:
    fields = presigned(key="up/${filename}")
    response = await post(app, encode(fields, filename="../../etc"))
    assert response.status == 204  # a filename is cut to its last segment: up/etc
    fields = presigned(key="up/a.txt", conditions=[["starts-with", "$Content-Type", "image/"]])
    fields["Content-Type"] = "text/html"
    response = await post(app, encode(fields))
    assert response.status == 403
    assert await error_of(response) == (
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$Content-Type",'
        ' "image/"]',
    )
    fields = presigned(key="up/a.txt")
    fields["key"] = "elsewhere.txt"  # the signed policy said {"key": "up/a.txt"}
    response = await post(app, encode(fields))
    assert (await error_of(response))[1].startswith(
        "Invalid according to Policy: Policy Condition failed: "
    )
    assert await stored(app, "elsewhere.txt") is None


@pytest.mark.parametrize(
    ("size", "code"), [(4, "EntityTooSmall"), (11, "EntityTooLarge"), (5, None), (10, None)]
)
async def test_content_length_range_bounds_the_file(
    app: S3App, size: int, code: str | None
) -> None:
    fields = presigned(key="sized", conditions=[["content-length-range", 5, 10]])
    response = await post(app, encode(fields, b"x" * size))
    if code is None:
        assert response.status == 204
        assert await stored(app, "sized") == b"x" * size
    else:
        assert response.status == 400
        assert (await error_of(response))[0] == code
        assert await stored(app, "sized") is None


async def test_a_tampered_or_unknown_signature_is_refused(app: S3App) -> None:
    fields = presigned(key="t.txt")
    fields["x-amz-signature"] = "0" * 64
    assert (await error_of(await post(app, encode(fields))))[0] == "SignatureDoesNotMatch"
    fields = presigned(key="t.txt", signature_version="s3")
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["expiration"] = "2099-01-01T00:00:00Z"  # a longer life, not signed
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    assert (await error_of(await post(app, encode(fields))))[0] == "SignatureDoesNotMatch"
    fields = presigned(key="t.txt")
    fields["x-amz-credential"] = fields["x-amz-credential"].replace("alice", "mallory")
    assert (await error_of(await post(app, encode(fields))))[0] == "InvalidAccessKeyId"
    assert await stored(app, "t.txt") is None


async def test_another_keys_bucket_refuses_their_form(app: S3App) -> None:
    response = await post(app, encode(presigned(key="b.txt", user="bob")))
    assert response.status == 403
    assert (await error_of(response))[0] == "AccessDenied"


async def test_the_acl_field_is_applied_as_on_put(app: S3App) -> None:
    fields = presigned(
        key="p.txt", fields={"acl": "public-read"}, conditions=[{"acl": "public-read"}]
    )
    response = await post(app, encode(fields))
    assert response.status == 204
    assert await stored(app, "p.txt") is not None
    granted = await body_of(await call(app, "GET", "/photos/p.txt?acl"))
    assert b"http://acs.amazonaws.com/groups/global/AllUsers" in granted
    assert b"<Permission>READ</Permission>" in granted


async def test_an_acl_relay_cannot_honour_is_refused_and_nothing_is_stored(app: S3App) -> None:
    fields = presigned(
        key="q.txt", fields={"acl": "aws-exec-read"}, conditions=[{"acl": "aws-exec-read"}]
    )
    response = await post(app, encode(fields))
    assert response.status == 501
    assert await stored(app, "q.txt") is None


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"a=b", "application/x-www-form-urlencoded", 412, "PreconditionFailed"),
        (f"--{BOUNDARY}--\r\n".encode(), None, 400, "InvalidArgument"),  # no file
        (encode({"key": "k"})[:60], None, 400, "MalformedPOSTRequest"),  # cut in a field
        (encode({"key": "k", "policy": "p" * 70000}), None, 400,
         "MaxPostPreDataLengthExceededError"),
        (encode({"key": "k"}), None, 403, "AccessDenied"),  # no policy: anonymous
    ],
)  # fmt: skip
async def test_bad_forms_are_refused_with_s3s_errors(
    app: S3App, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    response = await post(app, body, content_type)
    assert response.status == status
    assert (await error_of(response))[0] == code
    assert await stored(app, "k") is None


async def test_a_form_cut_short_inside_the_file_commits_nothing(app: S3App) -> None:
    body = encode(presigned(key="cut.txt"), b"y" * 5000)
    response = await post(app, body[:-100])
    assert response.status == 400
    assert (await error_of(response))[0] == "MalformedPOSTRequest"
    assert await stored(app, "cut.txt") is None


async def test_fields_after_the_file_are_ignored(app: S3App) -> None:
    fields = presigned(key="last.txt")
    response = await post(app, encode(fields, b"z", after={"x-amz-meta-late": "ignored"}))
    assert response.status == 204
    head = dict((await call(app, "HEAD", "/photos/last.txt")).headers)
    assert "x-amz-meta-late" not in head


async def test_a_large_file_arrives_whole_through_the_stream(app: S3App) -> None:
    data = bytes(range(256)) * (3 * 4096 + 17)  # three chunks and some, odd sizes
    response = await post(app, encode(presigned(key="big.bin"), data))
    assert response.status == 204
    assert await stored(app, "big.bin") == data
