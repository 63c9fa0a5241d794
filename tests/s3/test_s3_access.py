"""Access decided in one place, driven through S3App: anonymous requests, other keys,
canned ACLs and grants, bucket policies, the public access block, ownership controls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.bucket.engine import Engine
from relay.http import Response
from relay.s3.app import S3App
from tests.s3.test_s3_app import KEYS, Body, body_of, signed

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


@pytest.fixture
async def app(engine: Engine) -> S3App:
    app = S3App(engine, KEYS)
    await ok(app, "PUT", "/photos")
    await ok(app, "PUT", "/photos/private/a", b"secret")
    await ok(app, "PUT", "/photos/public/b", b"hello")
    return app


async def send(
    app: S3App,
    method: str,
    target: str,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    who: str | None = "alice",
    client: str = "127.0.0.1",
) -> Response:
    """A request signed by ``who``'s key, or unsigned when ``who`` is None."""
    request = signed(
        method, target, body, user=who, region=app.region, headers=headers or (),
        client=(client, 40000),
    )  # fmt: skip
    return await app.handle(request, Body(body))  # type: ignore[arg-type]


async def ok(
    app: S3App,
    method: str,
    target: str,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    who: str | None = "alice",
) -> bytes:
    response = await send(app, method, target, body, headers, who=who)
    assert response.status in (200, 204), await body_of(response)
    return await body_of(response)


async def status(app: S3App, method: str, target: str, **kwargs: Any) -> int:
    return (await send(app, method, target, **kwargs)).status


async def error_code(response: Response) -> str:
    return (await body_of(response)).split(b"<Code>")[1].split(b"</Code>")[0].decode()


def policy(*statements: dict[str, Any]) -> bytes:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}).encode()


PUBLIC_READ = {
    "Sid": "PublicRead",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::photos/public/*",
}


async def test_anonymous_requests_are_refused_without_a_grant(app: S3App) -> None:
    assert await status(app, "GET", "/photos/public/b", who=None) == 403
    assert await status(app, "HEAD", "/photos/public/b", who=None) == 403
    assert await status(app, "GET", "/photos", who=None) == 403
    assert await status(app, "GET", "/", who=None) == 403
    assert await status(app, "PUT", "/photos/new", body=b"x", who=None) == 403
    assert await status(app, "PUT", "/anon-bucket", who=None) == 403
    assert await status(app, "GET", "/photos/public/b", who="bob") == 403


async def test_a_public_read_object_is_served_to_anyone(app: S3App) -> None:
    await ok(app, "PUT", "/photos/public/b?acl", headers=[("x-amz-acl", "public-read")])
    assert await ok(app, "GET", "/photos/public/b", who=None) == b"hello"
    assert await status(app, "HEAD", "/photos/public/b", who=None) == 200
    assert await ok(app, "GET", "/photos/public/b", who="bob") == b"hello"
    # Only that object, and only to read it.
    assert await status(app, "GET", "/photos/private/a", who=None) == 403
    assert await status(app, "GET", "/photos/public/b?acl", who=None) == 403
    assert await status(app, "DELETE", "/photos/public/b", who=None) == 403
    assert await status(app, "PUT", "/photos/public/b", body=b"x", who=None) == 403
    document = await ok(app, "GET", "/photos/public/b?acl")
    assert ALL_USERS.encode() in document
    assert b"<Permission>READ</Permission>" in document
    await ok(app, "PUT", "/photos/public/b?acl", headers=[("x-amz-acl", "private")])
    assert await status(app, "GET", "/photos/public/b", who=None) == 403


async def test_canned_acls_on_put_copy_and_multipart(app: S3App) -> None:
    await ok(app, "PUT", "/photos/p1", b"one", [("x-amz-acl", "public-read")])
    assert await ok(app, "GET", "/photos/p1", who=None) == b"one"
    await ok(app, "PUT", "/photos/p2", b"", [("x-amz-copy-source", "/photos/p1")])
    assert await status(app, "GET", "/photos/p2", who=None) == 403  # a copy's ACL is its own
    await ok(
        app, "PUT", "/photos/p3", b"",
        [("x-amz-copy-source", "/photos/private/a"), ("x-amz-acl", "authenticated-read")],
    )  # fmt: skip
    assert await status(app, "GET", "/photos/p3", who=None) == 403
    assert await ok(app, "GET", "/photos/p3", who="bob") == b"secret"
    created = await ok(app, "POST", "/photos/p4?uploads", headers=[("x-amz-acl", "public-read")])
    upload_id = created.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    part = await send(app, "PUT", f"/photos/p4?partNumber=1&uploadId={upload_id}", b"four")
    etag = dict(part.headers)["etag"]
    complete = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag>"
        "</Part></CompleteMultipartUpload>"
    ).encode()
    await ok(app, "POST", f"/photos/p4?uploadId={upload_id}", complete)
    assert await ok(app, "GET", "/photos/p4", who=None) == b"four"


async def test_grants_to_a_second_key(app: S3App) -> None:
    await ok(app, "PUT", "/photos/private/a?acl", headers=[("x-amz-grant-read", 'id="bob"')])
    assert await ok(app, "GET", "/photos/private/a", who="bob") == b"secret"
    assert await status(app, "GET", "/photos/private/a", who=None) == 403
    assert await status(app, "GET", "/photos/private/a?acl", who="bob") == 403
    assert await status(app, "PUT", "/photos/bobs", body=b"x", who="bob") == 403
    await ok(app, "PUT", "/photos?acl", headers=[("x-amz-grant-write", "id=bob"),
                                                  ("x-amz-grant-read", "id=bob")])  # fmt: skip
    await ok(app, "PUT", "/photos/bobs", b"from bob", who="bob")
    listing = await ok(app, "GET", "/photos?list-type=2", who="bob")
    assert b"<Key>bobs</Key>" in listing
    assert await status(app, "DELETE", "/photos", who="bob") == 403
    assert await status(app, "PUT", "/photos?acl", who="bob",
                        headers=[("x-amz-acl", "public-read")]) == 403  # fmt: skip
    unknown = await send(app, "PUT", "/photos?acl", headers=[("x-amz-grant-read", "id=mallory")])
    assert (unknown.status, await error_code(unknown)) == (400, "InvalidArgument")
    both = await send(
        app, "PUT", "/photos/x", b"x", [("x-amz-acl", "private"), ("x-amz-grant-read", "id=bob")]
    )
    assert (both.status, await error_code(both)) == (400, "InvalidRequest")


async def test_acl_document_grants(app: S3App) -> None:
    grants = (
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
        f"<URI>{ALL_USERS}</URI></Grantee><Permission>READ</Permission></Grant>"
    )
    document = (
        "<AccessControlPolicy><Owner><ID>alice</ID></Owner>"
        f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    ).encode()
    await ok(app, "PUT", "/photos?acl", document)
    listing = await ok(app, "GET", "/photos", who=None)
    assert b"<Key>private/a</Key>" in listing
    assert await status(app, "GET", "/photos/private/a", who=None) == 403


async def test_bucket_policy_put_get_status_delete(app: S3App) -> None:
    assert await status(app, "GET", "/photos?policy") == 404
    document = policy(PUBLIC_READ)
    assert (await send(app, "PUT", "/photos?policy", document)).status == 204
    assert await ok(app, "GET", "/photos?policy") == document
    assert b"<IsPublic>true</IsPublic>" in await ok(app, "GET", "/photos?policyStatus")
    assert await ok(app, "GET", "/photos/public/b", who=None) == b"hello"
    assert await status(app, "GET", "/photos/private/a", who=None) == 403
    assert await status(app, "GET", "/photos?policy", who="bob") == 403
    await ok(app, "DELETE", "/photos?policy")
    assert await status(app, "GET", "/photos/public/b", who=None) == 403
    assert await status(app, "GET", "/photos?policy") == 404


async def test_a_malformed_policy_names_the_statement_and_field(app: S3App) -> None:
    bad = policy(PUBLIC_READ, {**PUBLIC_READ, "Sid": "Two", "Action": "s3:Teleport"})
    response = await send(app, "PUT", "/photos?policy", bad)
    assert (response.status, await error_code(response)) == (400, "MalformedPolicy")
    assert b"statement 2 (Sid &apos;Two&apos;), field Action" in await body_of(
        response
    ) or b"statement 2 (Sid 'Two'), field Action" in await body_of(response)
    assert await status(app, "GET", "/photos?policy") == 404


async def test_deny_wins_even_over_the_owner_who_keeps_the_policy(app: S3App) -> None:
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:DeleteObject", "s3:DeleteBucketPolicy"],
        "Resource": ["arn:aws:s3:::photos/*", "arn:aws:s3:::photos"],
    }
    await ok(app, "PUT", "/photos?policy", policy(deny))
    assert await status(app, "DELETE", "/photos/private/a") == 403
    deleted = await send(app, "POST", "/photos?delete", b"<Delete><Object><Key>private/a</Key>"
                         b"</Object></Delete>")  # fmt: skip
    assert b"<Code>AccessDenied</Code>" in await body_of(deleted)
    await ok(app, "DELETE", "/photos?policy")
    assert await status(app, "DELETE", "/photos/private/a") == 204


async def test_policy_conditions_see_the_request(app: S3App) -> None:
    listing = {
        "Effect": "Allow",
        "Principal": {"AWS": "bob"},
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::photos",
        "Condition": {
            "StringLike": {"s3:prefix": "public/*"},
            "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
        },
    }
    await ok(app, "PUT", "/photos?policy", policy(listing))
    assert await status(app, "GET", "/photos?prefix=public/", who="bob") == 200
    assert await status(app, "GET", "/photos?prefix=private/", who="bob") == 403
    assert await status(app, "GET", "/photos", who="bob") == 403
    assert await status(app, "GET", "/photos?prefix=public/", who="bob", client="10.1.1.1") == 403
    tagged = {**PUBLIC_READ, "Resource": "arn:aws:s3:::photos/*",
              "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "open"}}}  # fmt: skip
    await ok(app, "PUT", "/photos?policy", policy(tagged))
    assert await status(app, "GET", "/photos/private/a", who=None) == 403
    await ok(
        app,
        "PUT",
        "/photos/private/a?tagging",
        b"<Tagging><TagSet><Tag><Key>class</Key><Value>open</Value></Tag></TagSet></Tagging>",
    )
    assert await status(app, "GET", "/photos/private/a", who=None) == 200


async def test_public_access_block(app: S3App) -> None:
    assert await status(app, "GET", "/photos?publicAccessBlock") == 404
    await ok(app, "PUT", "/photos/public/b?acl", headers=[("x-amz-acl", "public-read")])
    await ok(app, "PUT", "/photos?policy", policy(PUBLIC_READ))

    async def block(**flags: bool) -> None:
        names = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                 "RestrictPublicBuckets")  # fmt: skip
        body = "".join(f"<{n}>{str(flags.get(n, False)).lower()}</{n}>" for n in names)
        await ok(
            app,
            "PUT",
            "/photos?publicAccessBlock",
            f"<PublicAccessBlockConfiguration>{body}</PublicAccessBlockConfiguration>".encode(),
        )

    await block(BlockPublicAcls=True)
    refused = await send(app, "PUT", "/photos/c", b"x", [("x-amz-acl", "public-read")])
    assert refused.status == 403
    assert await status(app, "GET", "/photos/c") == 404  # nothing left behind
    assert await status(app, "PUT", "/photos?acl", headers=[("x-amz-acl", "public-read")]) == 403
    assert await status(app, "GET", "/photos/public/b", who=None) == 200  # existing ones stand
    await block(BlockPublicPolicy=True)
    assert await status(app, "PUT", "/photos?policy", body=policy(PUBLIC_READ)) == 403
    await ok(app, "DELETE", "/photos?policy")
    await block(IgnorePublicAcls=True)
    assert await status(app, "GET", "/photos/public/b", who=None) == 403
    await ok(app, "DELETE", "/photos?publicAccessBlock")
    await ok(app, "PUT", "/photos/public/b?acl", headers=[("x-amz-acl", "private")])
    await ok(app, "PUT", "/photos?policy", policy(PUBLIC_READ))
    assert await status(app, "GET", "/photos/public/b", who=None) == 200
    await block(RestrictPublicBuckets=True)
    assert await status(app, "GET", "/photos/public/b", who=None) == 403
    assert b"<RestrictPublicBuckets>true</RestrictPublicBuckets>" in await ok(
        app, "GET", "/photos?publicAccessBlock"
    )


async def test_ownership_controls(app: S3App) -> None:
    answer = await ok(app, "GET", "/photos?ownershipControls")
    assert b"<ObjectOwnership>BucketOwnerPreferred</ObjectOwnership>" in answer
    await ok(app, "PUT", "/photos/public/b?acl", headers=[("x-amz-acl", "public-read")])
    enforced = (
        b"<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership>"
        b"</Rule></OwnershipControls>"
    )
    await ok(app, "PUT", "/photos?ownershipControls", enforced)
    assert b"BucketOwnerEnforced" in await ok(app, "GET", "/photos?ownershipControls")
    assert await status(app, "GET", "/photos/public/b", who=None) == 403  # ACLs disabled
    refused = await send(app, "PUT", "/photos/c", b"x", [("x-amz-acl", "public-read")])
    assert (refused.status, await error_code(refused)) == (400, "AccessControlListNotSupported")
    await ok(app, "PUT", "/photos/c", b"x", [("x-amz-acl", "bucket-owner-full-control")])
    writer = enforced.replace(b"BucketOwnerEnforced", b"ObjectWriter")
    assert await status(app, "PUT", "/photos?ownershipControls", body=writer) == 501
    await ok(app, "DELETE", "/photos?ownershipControls")
    assert await status(app, "GET", "/photos/public/b", who=None) == 200


async def test_create_bucket_with_a_canned_acl(app: S3App) -> None:
    await ok(app, "PUT", "/open", headers=[("x-amz-acl", "public-read")])
    assert b"<Name>open</Name>" in await ok(app, "GET", "/open", who=None)
    assert ALL_USERS.encode() in await ok(app, "GET", "/open?acl")


async def test_a_private_object_manifest_records_no_acl(app: S3App, engine: Engine) -> None:
    manifest = await engine.head_object("photos", "private/a")
    assert manifest.acl is None
    assert "acl" not in manifest.to_ipld()


async def test_a_badly_signed_request_is_not_taken_for_an_anonymous_one(app: S3App) -> None:
    await ok(app, "PUT", "/photos/public/b?acl", headers=[("x-amz-acl", "public-read")])
    forged = [
        ("authorization", "AWS4-HMAC-SHA256 Credential=bob/20260101/us-east-1/s3/aws4_request")
    ]
    response = await send(app, "GET", "/photos/public/b", headers=forged, who=None)
    assert (response.status, await error_code(response)) == (400, "AuthorizationHeaderMalformed")
    presigned = await send(app, "GET", "/photos/public/b?X-Amz-Signature=00", who=None)
    assert (presigned.status, await error_code(presigned)) == (
        400,
        "AuthorizationQueryParametersError",
    )
