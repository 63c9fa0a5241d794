# ruff: noqa: E501  (the tables read best one case a line)
"""ACLs and the one access decision: owner, policy, grants, public access block,
ownership controls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.access import acl
from relay.access.decide import BucketAccess, PublicAccessBlock, decide
from relay.access.policy import parse

ARN = "arn:aws:s3:::b"


def bucket(**fields: Any) -> BucketAccess:
    return BucketAccess(owner="OWNER", **fields)


def policy(*statements: dict[str, Any]) -> Any:
    return parse(json.dumps({"Statement": list(statements)}).encode(), "b")


PUBLIC_READ_POLICY = {
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": f"{ARN}/*",
}
DENY_DELETE_TO_ALL = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": ["s3:DeleteObject", "s3:PutBucketPolicy"],
    "Resource": [ARN, f"{ARN}/*"],
}


@pytest.mark.parametrize(
    ("name", "grants"),
    [
        ("private", [("O", "FULL_CONTROL")]),
        ("public-read", [("O", "FULL_CONTROL"), (acl.ALL_USERS, "READ")]),
        (
            "public-read-write",
            [("O", "FULL_CONTROL"), (acl.ALL_USERS, "READ"), (acl.ALL_USERS, "WRITE")],
        ),
        ("authenticated-read", [("O", "FULL_CONTROL"), (acl.AUTHENTICATED_USERS, "READ")]),
        ("bucket-owner-read", [("O", "FULL_CONTROL")]),
        ("bucket-owner-full-control", [("O", "FULL_CONTROL")]),
    ],
)
def test_canned_acls(name: str, grants: list[tuple[str, str]]) -> None:
    assert list(acl.canned(name, "O")) == grants


@pytest.mark.parametrize(
    ("name", "code"), [("public", "InvalidArgument"), ("log-delivery-write", "NotImplemented")]
)
def test_canned_acls_relay_refuses(name: str, code: str) -> None:
    with pytest.raises(acl.AclError) as raised:
        acl.canned(name, "O")
    assert raised.value.code == code


def test_grant_headers() -> None:
    headers = {
        "x-amz-grant-read": f'id="BOB", uri="{acl.ALL_USERS}"',
        "x-amz-grant-write-acp": "id=ALICE",
    }
    assert acl.grants_from_headers(headers, ["BOB", "ALICE"]) == (
        ("BOB", "READ"),
        (acl.ALL_USERS, "READ"),
        ("ALICE", "WRITE_ACP"),
    )
    assert acl.grants_from_headers({}) is None


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ('id="MALLORY"', "InvalidArgument"),
        ('uri="http://acs.amazonaws.com/groups/s3/LogDelivery"', "InvalidArgument"),
        ('emailAddress="a@example.com"', "UnresolvableGrantByEmailAddress"),
        ("nonsense", "InvalidArgument"),
    ],
)
def test_bad_grant_headers(value: str, code: str) -> None:
    with pytest.raises(acl.AclError) as raised:
        acl.grants_from_headers({"x-amz-grant-read": value}, ["BOB"])
    assert raised.value.code == code


def test_acl_document_round_trips() -> None:
    grants = (("OWNER", "FULL_CONTROL"), ("BOB", "READ"), (acl.ALL_USERS, "READ"))
    document = acl.render_document("OWNER", grants)
    assert acl.parse_document(document, ["OWNER", "BOB"]) == grants
    assert acl.decode(acl.encode(grants)) == grants


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<nope", "MalformedACLError"),
        (
            b"<AccessControlPolicy><AccessControlList></AccessControlList></AccessControlPolicy>",
            "MalformedACLError",
        ),
        (
            b'<AccessControlPolicy><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
            b' xsi:type="CanonicalUser"><ID>MALLORY</ID></Grantee><Permission>READ</Permission>'
            b"</Grant></AccessControlList></AccessControlPolicy>",
            "InvalidArgument",
        ),
    ],
)
def test_bad_acl_documents(body: bytes, code: str) -> None:
    with pytest.raises(acl.AclError) as raised:
        acl.parse_document(body, ["OWNER"])
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("access", "principal", "action", "resource", "object_grants", "allowed"),
    [
        # the owner may do anything by default; no one else may
        (bucket(), "OWNER", "s3:PutObject", f"{ARN}/k", None, True),
        (bucket(), "BOB", "s3:GetObject", f"{ARN}/k", None, False),
        (bucket(), None, "s3:ListBucket", ARN, None, False),
        # object ACLs govern object reads; bucket ACLs listing and writing
        (bucket(), None, "s3:GetObject", f"{ARN}/k", acl.canned("public-read", "OWNER"), True),
        (bucket(), None, "s3:PutObjectAcl", f"{ARN}/k", acl.canned("public-read", "OWNER"), False),
        (bucket(), "BOB", "s3:GetObject", f"{ARN}/k", acl.canned("authenticated-read", "OWNER"), True),
        (bucket(), None, "s3:GetObject", f"{ARN}/k", acl.canned("authenticated-read", "OWNER"), False),
        (bucket(), "BOB", "s3:GetObjectAcl", f"{ARN}/k", (("BOB", "READ_ACP"),), True),
        (bucket(), "BOB", "s3:GetObjectAcl", f"{ARN}/k", (("BOB", "FULL_CONTROL"),), True),
        (bucket(), "BOB", "s3:GetObjectAcl", f"{ARN}/k", (("BOB", "READ"),), False),
        (bucket(grants=acl.canned("public-read", "OWNER")), None, "s3:ListBucket", ARN, None, True),
        (bucket(grants=acl.canned("public-read", "OWNER")), None, "s3:PutObject", f"{ARN}/k", None, False),
        (bucket(grants=acl.canned("public-read", "OWNER")), None, "s3:GetObject", f"{ARN}/k", None, False),
        (bucket(grants=acl.canned("public-read-write", "OWNER")), None, "s3:PutObject", f"{ARN}/k", None, True),
        (bucket(grants=(("BOB", "WRITE"),)), "BOB", "s3:DeleteObject", f"{ARN}/k", None, True),
        (bucket(grants=(("BOB", "WRITE"),)), "BOB", "s3:PutBucketAcl", ARN, None, False),
        (bucket(grants=(("BOB", "WRITE"),)), "BOB", "s3:DeleteBucket", ARN, None, False),
        # policy: allow, deny wins (over the owner too), the owner keeps the policy
        (bucket(policy=policy(PUBLIC_READ_POLICY)), None, "s3:GetObject", f"{ARN}/k", None, True),
        (bucket(policy=policy(PUBLIC_READ_POLICY)), None, "s3:ListBucket", ARN, None, False),
        (bucket(policy=policy(DENY_DELETE_TO_ALL)), "OWNER", "s3:DeleteObject", f"{ARN}/k", None, False),
        (bucket(policy=policy(DENY_DELETE_TO_ALL)), "OWNER", "s3:PutBucketPolicy", ARN, None, True),
        (
            bucket(policy=policy({**PUBLIC_READ_POLICY, "Effect": "Deny"})),
            None, "s3:GetObject", f"{ARN}/k", acl.canned("public-read", "OWNER"), False,
        ),
        # public access block
        (
            bucket(public_access_block=PublicAccessBlock(ignore_public_acls=True)),
            None, "s3:GetObject", f"{ARN}/k", acl.canned("public-read", "OWNER"), False,
        ),
        (
            bucket(public_access_block=PublicAccessBlock(ignore_public_acls=True)),
            "BOB", "s3:GetObject", f"{ARN}/k", (("BOB", "READ"),), True,
        ),
        (
            bucket(policy=policy(PUBLIC_READ_POLICY), public_access_block=PublicAccessBlock(restrict_public_buckets=True)),
            None, "s3:GetObject", f"{ARN}/k", None, False,
        ),
        (
            bucket(policy=policy({**PUBLIC_READ_POLICY, "Principal": {"AWS": "BOB"}}), public_access_block=PublicAccessBlock(restrict_public_buckets=True)),
            "BOB", "s3:GetObject", f"{ARN}/k", None, True,
        ),
        # BucketOwnerEnforced: ACLs grant nothing
        (
            bucket(ownership="BucketOwnerEnforced"),
            None, "s3:GetObject", f"{ARN}/k", acl.canned("public-read", "OWNER"), False,
        ),
        (
            bucket(ownership="BucketOwnerEnforced", policy=policy(PUBLIC_READ_POLICY)),
            None, "s3:GetObject", f"{ARN}/k", None, True,
        ),
    ],
)  # fmt: skip
def test_decide(
    access: BucketAccess,
    principal: str | None,
    action: str,
    resource: str,
    object_grants: tuple[tuple[str, str], ...] | None,
    allowed: bool,
) -> None:
    assert decide(access, principal, action, resource, {}, object_grants=object_grants) is allowed
