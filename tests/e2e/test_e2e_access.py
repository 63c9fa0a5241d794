"""ACLs, bucket policies, the public access block and ownership controls through boto3,
against a real relay with two keys; anonymous requests with an unsigned client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from e2e_helpers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    RelayProcess,
    anonymous_get,
    serving_clients,
    start_relay,
)

BOB, BOB_SECRET = "BOBKEY", "bob-secret-key"


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    base = tmp_path_factory.mktemp("relay")
    config = base / "relay.toml"
    config.write_text(
        f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
        f'[[credentials]]\naccess_key_id = "{BOB}"\nsecret_access_key = "{BOB_SECRET}"\n'
    )
    with serving_clients(start_relay(base, config=config)) as relay:
        yield relay


def _client(relay: RelayProcess, key: str | None, secret: str | None) -> Any:
    signature: Any = botocore.UNSIGNED if key is None else "s3v4"
    return boto3.session.Session().client(
        "s3",
        endpoint_url=relay.endpoint,
        aws_access_key_id=key or "unused",
        aws_secret_access_key=secret or "unused",
        region_name=REGION,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            signature_version=signature,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


@pytest.fixture(scope="module")
def alice(relay_server: RelayProcess) -> Any:
    return _client(relay_server, ACCESS_KEY, SECRET_KEY)


@pytest.fixture(scope="module")
def bob(relay_server: RelayProcess) -> Any:
    return _client(relay_server, BOB, BOB_SECRET)


@pytest.fixture(scope="module")
def anonymous(relay_server: RelayProcess) -> Any:
    return _client(relay_server, None, None)


@pytest.fixture
def bucket(alice: Any, bucket_name: str) -> str:
    alice.create_bucket(Bucket=bucket_name)
    alice.put_object(Bucket=bucket_name, Key="doc.txt", Body=b"hello")
    return bucket_name


def code_of(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call()
    error = excinfo.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_anonymous_get_refused_then_allowed_by_a_canned_acl(
    relay_server: RelayProcess, alice: Any, anonymous: Any, bucket: str
) -> None:
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt")[0] == 403
    assert code_of(lambda: anonymous.get_object(Bucket=bucket, Key="doc.txt"))[1] == 403
    alice.put_object_acl(Bucket=bucket, Key="doc.txt", ACL="public-read")
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt") == (200, b"hello")
    assert anonymous.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"hello"
    grants = alice.get_object_acl(Bucket=bucket, Key="doc.txt")["Grants"]
    assert {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"} in [
        g["Grantee"] for g in grants
    ]
    assert code_of(lambda: anonymous.list_objects_v2(Bucket=bucket))[1] == 403
    assert code_of(lambda: anonymous.put_object(Bucket=bucket, Key="x", Body=b"x"))[1] == 403


@pytest.mark.parametrize(
    ("canned", "anonymous_reads", "bob_reads"),
    [
        ("private", False, False),
        ("public-read", True, True),
        ("public-read-write", True, True),
        ("authenticated-read", False, True),
        ("bucket-owner-read", False, False),
        ("bucket-owner-full-control", False, False),
    ],
)
def test_each_canned_acl_on_put_object(
    alice: Any, bob: Any, anonymous: Any, bucket: str,
    canned: str, anonymous_reads: bool, bob_reads: bool,
) -> None:  # fmt: skip
    alice.put_object(Bucket=bucket, Key="k", Body=b"v", ACL=canned)
    for client, allowed in ((anonymous, anonymous_reads), (bob, bob_reads)):
        if allowed:
            assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
        else:
            assert code_of(lambda c=client: c.get_object(Bucket=bucket, Key="k")) == (
                "AccessDenied",
                403,
            )


def test_public_read_write_bucket_takes_anonymous_uploads(
    alice: Any, anonymous: Any, bucket_name: str
) -> None:
    alice.create_bucket(Bucket=bucket_name, ACL="public-read-write")
    anonymous.put_object(Bucket=bucket_name, Key="drop", Body=b"dropped")
    keys = [o["Key"] for o in anonymous.list_objects_v2(Bucket=bucket_name)["Contents"]]
    assert keys == ["drop"]
    assert alice.get_object(Bucket=bucket_name, Key="drop")["Body"].read() == b"dropped"
    assert code_of(lambda: anonymous.delete_bucket(Bucket=bucket_name))[1] == 403
    owners = {o["Owner"]["ID"] for o in anonymous.list_objects(Bucket=bucket_name)["Contents"]}
    assert owners == {ACCESS_KEY}  # the bucket's owner, whoever lists
    deleted = anonymous.delete_objects(Bucket=bucket_name, Delete={"Objects": [{"Key": "drop"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["drop"]


def test_delete_objects_is_decided_key_by_key(alice: Any, bob: Any, bucket: str) -> None:
    alice.put_object(Bucket=bucket, Key="tmp/x", Body=b"x")
    policy = {"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{bucket}/tmp/*",
    }]}  # fmt: skip
    alice.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    result = bob.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "tmp/x"}, {"Key": "doc.txt"}]}
    )
    assert [d["Key"] for d in result["Deleted"]] == ["tmp/x"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("doc.txt", "AccessDenied")]
    assert alice.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"hello"


def test_grants_to_a_second_key(alice: Any, bob: Any, anonymous: Any, bucket: str) -> None:
    assert code_of(lambda: bob.get_object(Bucket=bucket, Key="doc.txt"))[1] == 403
    alice.put_object_acl(Bucket=bucket, Key="doc.txt", GrantRead=f'id="{BOB}"')
    assert bob.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"hello"
    assert code_of(lambda: anonymous.get_object(Bucket=bucket, Key="doc.txt"))[1] == 403
    assert code_of(lambda: bob.put_object(Bucket=bucket, Key="b", Body=b"x"))[1] == 403
    owner = alice.get_bucket_acl(Bucket=bucket)["Owner"]
    alice.put_bucket_acl(
        Bucket=bucket,
        AccessControlPolicy={
            "Owner": owner,
            "Grants": [
                {
                    "Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]},
                    "Permission": "FULL_CONTROL",
                },
                {"Grantee": {"Type": "CanonicalUser", "ID": BOB}, "Permission": "WRITE"},
            ],
        },
    )
    bob.put_object(Bucket=bucket, Key="b", Body=b"from bob")
    assert alice.get_object(Bucket=bucket, Key="b")["Body"].read() == b"from bob"
    permissions = {
        (g["Grantee"].get("ID"), g["Permission"])
        for g in alice.get_bucket_acl(Bucket=bucket)["Grants"]
    }
    assert permissions == {(owner["ID"], "FULL_CONTROL"), (BOB, "WRITE")}
    assert code_of(lambda: bob.list_objects_v2(Bucket=bucket))[1] == 403
    assert code_of(lambda: alice.put_bucket_acl(Bucket=bucket, GrantRead='id="NOBODY"')) == (
        "InvalidArgument",
        400,
    )


def test_bucket_policy_lifecycle(
    relay_server: RelayProcess, alice: Any, bob: Any, anonymous: Any, bucket: str
) -> None:
    assert code_of(lambda: alice.get_bucket_policy(Bucket=bucket)) == ("NoSuchBucketPolicy", 404)
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadDocs",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*.txt"],
                },
                {
                    "Sid": "BobLists",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{BOB}:root"]},
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}",
                },
            ],
        }
    )
    alice.put_bucket_policy(Bucket=bucket, Policy=document)
    assert json.loads(alice.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(document)
    assert alice.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt") == (200, b"hello")
    alice.put_object(Bucket=bucket, Key="img.png", Body=b"png")
    assert anonymous_get(relay_server, f"/{bucket}/img.png")[0] == 403
    assert [o["Key"] for o in bob.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "doc.txt",
        "img.png",
    ]
    assert code_of(lambda: anonymous.list_objects_v2(Bucket=bucket))[1] == 403
    assert code_of(lambda: bob.get_bucket_policy(Bucket=bucket))[1] == 403
    alice.delete_bucket_policy(Bucket=bucket)
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt")[0] == 403


def test_malformed_policy_points_at_the_problem(alice: Any, bucket: str) -> None:
    document = json.dumps(
        {
            "Statement": [
                {
                    "Sid": "Bad",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObjekt",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ]
        }
    )
    with pytest.raises(ClientError) as excinfo:
        alice.put_bucket_policy(Bucket=bucket, Policy=document)
    error = excinfo.value.response["Error"]
    assert error["Code"] == "MalformedPolicy"
    assert "statement 1 (Sid 'Bad'), field Action" in error["Message"]
    assert "s3:GetObjekt" in error["Message"]


def test_public_access_block_flags(
    relay_server: RelayProcess, alice: Any, anonymous: Any, bucket: str
) -> None:
    def block(**flags: bool) -> None:
        names = (
            "BlockPublicAcls",
            "IgnorePublicAcls",
            "BlockPublicPolicy",
            "RestrictPublicBuckets",
        )
        alice.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={name: flags.get(name, False) for name in names},
        )

    assert code_of(lambda: alice.get_public_access_block(Bucket=bucket))[1] == 404
    alice.put_object_acl(Bucket=bucket, Key="doc.txt", ACL="public-read")
    block(BlockPublicAcls=True)
    assert alice.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    assert code_of(
        lambda: alice.put_object(Bucket=bucket, Key="new", Body=b"x", ACL="public-read")
    ) == ("AccessDenied", 403)
    assert code_of(lambda: alice.head_object(Bucket=bucket, Key="new"))[1] == 404
    block(IgnorePublicAcls=True)
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt")[0] == 403
    public_policy = json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }]})  # fmt: skip
    block(BlockPublicPolicy=True)
    assert code_of(lambda: alice.put_bucket_policy(Bucket=bucket, Policy=public_policy))[1] == 403
    block(RestrictPublicBuckets=True)
    alice.put_object_acl(Bucket=bucket, Key="doc.txt", ACL="private")  # the policy alone
    alice.put_bucket_policy(Bucket=bucket, Policy=public_policy)
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt")[0] == 403
    alice.delete_public_access_block(Bucket=bucket)
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt") == (200, b"hello")


def test_ownership_controls(relay_server: RelayProcess, alice: Any, bucket: str) -> None:
    rules = alice.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    alice.put_object_acl(Bucket=bucket, Key="doc.txt", ACL="public-read")
    alice.put_bucket_ownership_controls(
        Bucket=bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt")[0] == 403
    assert code_of(
        lambda: alice.put_object(Bucket=bucket, Key="n", Body=b"x", ACL="public-read")
    ) == ("AccessControlListNotSupported", 400)
    alice.put_object(Bucket=bucket, Key="n", Body=b"x", ACL="bucket-owner-full-control")
    assert code_of(
        lambda: alice.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
        )
    ) == ("NotImplemented", 501)
    alice.delete_bucket_ownership_controls(Bucket=bucket)
    assert anonymous_get(relay_server, f"/{bucket}/doc.txt") == (200, b"hello")
