"""Single-version semantics, tagging, ACLs, ownership and bucket-level reads against a real
relay: what backup tools, rclone, s3fs and SDK code call on a bucket that never had
versioning, and what a second credential may (not) do with a bucket it does not own.

Ownership needs two credentials: a second relay is started for that part of the module with
a config file holding two ``[[credentials]]`` tables (``relay serve --config``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from e2e_helpers import (
    REGION,
    RelayProcess,
    start_relay,
    stop_relay,
)
from test_e2e_boto3 import MiB, blake3_raw_cid, error_of, pattern, quoted_md5
from test_e2e_errors import signed

# A version id of the shape S3 hands out; no object here ever has it.
SOME_VERSION_ID = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
# Tag limits from the PutObjectTagging reference: 10 tags, keys 128 and values 256 characters.
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 10, 128, 256


def packs_size(relay: RelayProcess) -> int:
    packs = Path(relay.data_dir) / "blobs" / "packs"
    return sum(path.stat().st_size for path in packs.rglob("*") if path.is_file())


def x_cid(response: Any) -> str:
    cid: str = response["ResponseMetadata"]["HTTPHeaders"]["x-cid"]
    return cid


def tags(pairs: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": key, "Value": value} for key, value in pairs.items()]}


def tag_dict(response: Any) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in response["TagSet"]}


# -- GetBucketVersioning, ListObjectVersions, VersionId null -----------------------------


def test_bucket_versioning_was_never_enabled(
    client: Any, relay_server: RelayProcess, bucket: str
) -> None:
    # GetBucketVersioning reference: a bucket that never had versioning enabled answers a
    # VersioningConfiguration without a Status element.
    versioning = client.get_bucket_versioning(Bucket=bucket)
    assert versioning["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in versioning
    assert "MFADelete" not in versioning
    raw = signed(relay_server, "GET", f"/{bucket}?versioning")
    assert b"<VersioningConfiguration" in raw.body, raw.body
    assert b"<Status>" not in raw.body


def test_list_object_versions_lists_every_object_with_version_id_null(
    client: Any, bucket: str
) -> None:
    bodies = {key: key.encode() * 3 for key in ("b/2", "a", "b/1", "c d")}
    for key, body in bodies.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    listing = client.list_object_versions(Bucket=bucket)
    versions = listing["Versions"]
    assert [v["Key"] for v in versions] == sorted(bodies)
    for version in versions:
        assert version["VersionId"] == "null", version
        assert version["IsLatest"] is True, version
        assert version["ETag"] == quoted_md5(bodies[version["Key"]])
        assert version["Size"] == len(bodies[version["Key"]])
    assert "DeleteMarkers" not in listing
    assert listing["IsTruncated"] is False


def test_list_object_versions_pages_through_every_object_once(client: Any, bucket: str) -> None:
    keys = [f"k{n}" for n in range(5)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    pages = list(
        client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    )
    listed = [v["Key"] for page in pages for v in page.get("Versions", [])]
    assert listed == keys
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    assert pages[0]["NextKeyMarker"] == "k1"


def test_list_object_versions_with_prefix_and_delimiter(client: Any, bucket: str) -> None:
    for key in ("a", "b/1", "b/2", "c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    listing = client.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [v["Key"] for v in listing["Versions"]] == ["a", "c"]
    assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["b/"]
    only_b = client.list_object_versions(Bucket=bucket, Prefix="b/")
    assert [v["Key"] for v in only_b["Versions"]] == ["b/1", "b/2"]


def test_boto3_empties_a_bucket_through_its_object_versions(
    relay_server: RelayProcess, bucket: str
) -> None:
    # The idiom tools use to empty any bucket: list versions, delete each (Key, VersionId).
    resource = boto3.session.Session().resource(
        "s3",
        endpoint_url=relay_server.endpoint,
        aws_access_key_id=relay_server.client_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=relay_server.client_env["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    target = resource.Bucket(bucket)
    for n in range(7):
        target.put_object(Key=f"dir/{n}", Body=b"x")
    target.object_versions.delete()
    assert list(target.objects.all()) == []
    target.delete()
    with pytest.raises(ClientError) as excinfo:
        resource.meta.client.head_bucket(Bucket=bucket)
    assert error_of(excinfo)[1] == 404


def test_get_and_head_with_version_id_null_serve_the_object(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"current")
    assert client.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"current"
    assert client.head_object(Bucket=bucket, Key="k", VersionId="null")["ContentLength"] == 7


def test_delete_object_with_version_id_null_deletes_it(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    deleted = client.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_with_version_id_null_deletes_them(client: Any, bucket: str) -> None:
    for key in ("one", "two", "three"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = client.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "one", "VersionId": "null"}, {"Key": "two"}]},
    )
    assert sorted(item["Key"] for item in result["Deleted"]) == ["one", "two"]
    assert "Errors" not in result
    assert [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["three"]


def test_get_head_or_delete_with_another_version_id_is_no_such_version(
    client: Any, bucket: str
) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="k", VersionId=SOME_VERSION_ID)
    assert error_of(excinfo) == ("NoSuchVersion", 404)
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=bucket, Key="k", VersionId=SOME_VERSION_ID)
    assert error_of(excinfo)[1] == 404
    with pytest.raises(ClientError) as excinfo:
        client.delete_object(Bucket=bucket, Key="k", VersionId=SOME_VERSION_ID)
    assert error_of(excinfo) == ("NoSuchVersion", 404)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x", "must not delete"


def test_delete_objects_with_another_version_id_reports_no_such_version(
    client: Any, bucket: str
) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    result = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": SOME_VERSION_ID}]}
    )
    assert [(e["Key"], e["Code"]) for e in result.get("Errors", [])] == [("k", "NoSuchVersion")]
    assert "Deleted" not in result
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x", "must not delete"


# -- tagging -----------------------------------------------------------------------------


def test_object_tagging_round_trip(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"tagged")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    put = s3.put_object_tagging(
        Bucket=bucket, Key="k", Tagging=tags({"project": "relay", "tier": "cold storage"})
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert tag_dict(got) == {"project": "relay", "tier": "cold storage"}
    # x-amz-tagging-count: GetObject and HeadObject both carry it (TagCount in the SDK).
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    assert s3.head_object(Bucket=bucket, Key="k")["TagCount"] == 2
    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"tagged"


def test_put_tagging_replaces_the_whole_tag_set(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags({"a": "1", "b": "2"}))
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags({"c": "3"}))
    assert tag_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"c": "3"}


def test_x_amz_tagging_on_put_is_stored(s3: Any, bucket: str) -> None:
    encoded = urlencode({"owner": "team a&b", "empty": "", "ключ": "значение"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=encoded)
    assert tag_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {
        "owner": "team a&b",
        "empty": "",
        "ключ": "значение",
    }
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3


def test_tag_change_keeps_the_body_etag_and_x_cid(
    relay_server: RelayProcess, client: Any, bucket: str
) -> None:
    body = pattern(5 * MiB + 3, seed=4)
    client.put_object(Bucket=bucket, Key="k", Body=body)
    before = client.head_object(Bucket=bucket, Key="k")
    store_before = packs_size(relay_server)
    assert store_before >= len(body), f"{store_before} B in the packs: not the body's store?"
    client.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags({"state": "archived"}))
    growth = packs_size(relay_server) - store_before
    after = client.get_object(Bucket=bucket, Key="k")
    assert after["ETag"] == before["ETag"] == quoted_md5(body)
    assert x_cid(after) == x_cid(before) == blake3_raw_cid(body)
    assert after["Body"].read() == body
    assert growth < MiB, f"a tag change rewrote the body: the store grew by {growth} B"


def test_ten_tags_of_the_longest_keys_and_values_are_accepted(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    longest = {
        f"{n}".ljust(MAX_TAG_KEY, "k"): f"{n}".ljust(MAX_TAG_VALUE, "v") for n in range(MAX_TAGS)
    }
    client.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags(longest))
    assert tag_dict(client.get_object_tagging(Bucket=bucket, Key="k")) == longest


@pytest.mark.parametrize(
    "tag_set",
    [
        {f"k{n}": "v" for n in range(MAX_TAGS + 1)},
        {"k" * (MAX_TAG_KEY + 1): "v"},
        {"k": "v" * (MAX_TAG_VALUE + 1)},
    ],
    ids=["eleven-tags", "key-129", "value-257"],
)
def test_tags_over_the_limits_are_invalid_tag(
    client: Any, bucket: str, tag_set: dict[str, str]
) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    client.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags({"keep": "me"}))
    with pytest.raises(ClientError) as excinfo:
        client.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags(tag_set))
    assert error_of(excinfo) == ("InvalidTag", 400)
    assert tag_dict(client.get_object_tagging(Bucket=bucket, Key="k")) == {"keep": "me"}


def test_too_many_tags_on_put_is_invalid_tag_and_stores_nothing(s3: Any, bucket: str) -> None:
    encoded = urlencode({f"k{n}": "v" for n in range(MAX_TAGS + 1)})
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=encoded)
    assert error_of(excinfo) == ("InvalidTag", 400)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_keeps_the_source_tags_by_default(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="colour=blue")
    client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert tag_dict(client.get_object_tagging(Bucket=bucket, Key="dst")) == {"colour": "blue"}


def test_copy_with_tagging_directive_replace_takes_the_request_tags(
    client: Any, bucket: str
) -> None:
    client.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="colour=blue")
    client.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="shape=round",
    )
    assert tag_dict(client.get_object_tagging(Bucket=bucket, Key="dst")) == {"shape": "round"}
    assert tag_dict(client.get_object_tagging(Bucket=bucket, Key="src")) == {"colour": "blue"}


def test_tagging_a_missing_key_is_no_such_key(client: Any, bucket: str) -> None:
    for call in (
        lambda: client.get_object_tagging(Bucket=bucket, Key="nothing"),
        lambda: client.put_object_tagging(Bucket=bucket, Key="nothing", Tagging=tags({"a": "b"})),
        lambda: client.delete_object_tagging(Bucket=bucket, Key="nothing"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == ("NoSuchKey", 404)


# -- ACLs --------------------------------------------------------------------------------


def assert_owner_has_full_control(acl: Any, owner_id: str) -> None:
    assert acl["Owner"]["ID"] == owner_id
    assert len(acl["Grants"]) == 1, acl["Grants"]
    grant = acl["Grants"][0]
    assert grant["Permission"] == "FULL_CONTROL"
    assert grant["Grantee"]["Type"] == "CanonicalUser"
    assert grant["Grantee"]["ID"] == owner_id


def test_bucket_acl_grants_the_owner_full_control(client: Any, bucket: str) -> None:
    owner_id = client.list_buckets()["Owner"]["ID"]
    assert owner_id, "ListBuckets names the owner"
    assert_owner_has_full_control(client.get_bucket_acl(Bucket=bucket), owner_id)


def test_object_acl_grants_the_owner_full_control(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    owner_id = client.list_buckets()["Owner"]["ID"]
    assert_owner_has_full_control(client.get_object_acl(Bucket=bucket, Key="k"), owner_id)
    with pytest.raises(ClientError) as excinfo:
        client.get_object_acl(Bucket=bucket, Key="nothing")
    assert error_of(excinfo) == ("NoSuchKey", 404)


def test_private_canned_acl_is_accepted(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    bucket_acl = client.put_bucket_acl(Bucket=bucket, ACL="private")
    assert bucket_acl["ResponseMetadata"]["HTTPStatusCode"] == 200
    object_acl = client.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert object_acl["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize(
    ("canned", "group"),
    [("public-read", "AllUsers"), ("public-read-write", "AllUsers"),
     ("authenticated-read", "AuthenticatedUsers")],
)  # fmt: skip
def test_other_canned_acls_are_kept(client: Any, bucket: str, canned: str, group: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    client.put_bucket_acl(Bucket=bucket, ACL=canned)
    client.put_object_acl(Bucket=bucket, Key="k", ACL=canned)
    for acl in (
        client.get_bucket_acl(Bucket=bucket),
        client.get_object_acl(Bucket=bucket, Key="k"),
    ):
        uris = [g["Grantee"].get("URI", "") for g in acl["Grants"]]
        assert f"http://acs.amazonaws.com/groups/global/{group}" in uris


# -- bucket-level reads SDKs make --------------------------------------------------------


def test_bucket_location_of_us_east_1_is_empty(client: Any, bucket: str) -> None:
    # GetBucketLocation reference: buckets in us-east-1 have a LocationConstraint of null.
    assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("get_bucket_tagging", "NoSuchTagSet"),
        ("get_bucket_policy", "NoSuchBucketPolicy"),
        ("get_bucket_cors", "NoSuchCORSConfiguration"),
        ("get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration"),
    ],
)
def test_missing_bucket_configuration_is_its_no_such_error(
    client: Any, bucket: str, bucket_name: str, operation: str, code: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        getattr(client, operation)(Bucket=bucket)
    assert error_of(excinfo) == (code, 404)
    with pytest.raises(ClientError) as excinfo:
        getattr(client, operation)(Bucket=f"{bucket_name[:50]}-missing")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_bucket_versioning_and_location_of_a_missing_bucket_are_no_such_bucket(
    client: Any, bucket_name: str
) -> None:
    for operation in (client.get_bucket_versioning, client.get_bucket_location):
        with pytest.raises(ClientError) as excinfo:
            operation(Bucket=bucket_name)
        assert error_of(excinfo) == ("NoSuchBucket", 404)


# -- ownership between two credentials ---------------------------------------------------

ALICE = ("ALICEKEYID0000000001", "alice-secret-access-key")
BOB = ("BOBKEYID000000000002", "bob-secret-access-key")


@pytest.fixture(scope="module")
def two_key_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    base = tmp_path_factory.mktemp("relay-two-keys")
    config = base / "relay.toml"
    config.write_text(
        "".join(
            f'[[credentials]]\naccess_key_id = "{key}"\nsecret_access_key = "{secret}"\n\n'
            for key, secret in (ALICE, BOB)
        )
    )
    relay = start_relay(base, config=config)
    try:
        yield relay
    finally:
        code = stop_relay(relay.process)
    log = relay.log()
    assert code == 0, f"relay exited with {code}:\n{log[-5000:]}"
    assert "Traceback" not in log, log[-5000:]


def client_as(relay: RelayProcess, credential: tuple[str, str]) -> Any:
    key, secret = credential
    return boto3.session.Session().client(
        "s3",
        endpoint_url=relay.endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


@pytest.fixture(scope="module")
def alice(two_key_relay: RelayProcess) -> Any:
    return client_as(two_key_relay, ALICE)


@pytest.fixture(scope="module")
def bob(two_key_relay: RelayProcess) -> Any:
    return client_as(two_key_relay, BOB)


@pytest.fixture
def alices_bucket(alice: Any, bucket_name: str) -> str:
    alice.create_bucket(Bucket=bucket_name)
    alice.put_object(Bucket=bucket_name, Key="secret", Body=b"alice's data")
    return bucket_name


def test_another_credential_does_not_see_the_bucket(
    alice: Any, bob: Any, alices_bucket: str
) -> None:
    assert alices_bucket in [b["Name"] for b in alice.list_buckets()["Buckets"]]
    assert alices_bucket not in [b["Name"] for b in bob.list_buckets().get("Buckets", [])]


KEYED_OPERATIONS = {
    "get_object",
    "head_object",
    "put_object",
    "delete_object",
    "get_object_acl",
    "create_multipart_upload",
    "get_object_tagging",
}


@pytest.mark.parametrize(
    "operation",
    [
        "list_objects_v2",
        "get_object",
        "head_object",
        "put_object",
        "delete_object",
        "get_bucket_acl",
        "get_object_acl",
        "list_object_versions",
        "list_multipart_uploads",
        "create_multipart_upload",
        "get_bucket_versioning",
        "get_bucket_location",
        "get_object_tagging",
    ],
)
def test_another_credential_gets_access_denied(
    alice: Any, bob: Any, alices_bucket: str, operation: str
) -> None:
    params: dict[str, Any] = {"Bucket": alices_bucket}
    if operation in KEYED_OPERATIONS:
        params["Key"] = "secret"
    if operation == "put_object":
        params["Body"] = b"bob was here"
    with pytest.raises(ClientError) as excinfo:
        getattr(bob, operation)(**params)
    code, status = error_of(excinfo)
    assert status == 403, (operation, code, status)
    if operation != "head_object":  # a HEAD answer has no body, so no code
        assert code == "AccessDenied", (operation, code)
    assert alice.get_object(Bucket=alices_bucket, Key="secret")["Body"].read() == b"alice's data"


def test_another_credential_cannot_delete_the_bucket(
    alice: Any, bob: Any, alices_bucket: str
) -> None:
    alice.delete_object(Bucket=alices_bucket, Key="secret")  # empty: only ownership can refuse
    with pytest.raises(ClientError) as excinfo:
        bob.delete_bucket(Bucket=alices_bucket)
    assert error_of(excinfo) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as excinfo:
        bob.head_bucket(Bucket=alices_bucket)
    assert error_of(excinfo)[1] == 403
    assert alice.head_bucket(Bucket=alices_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_creating_a_bucket_another_credential_owns_is_bucket_already_exists(
    bob: Any, alices_bucket: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        bob.create_bucket(Bucket=alices_bucket)
    assert error_of(excinfo) == ("BucketAlreadyExists", 409)


def test_copying_out_of_another_credentials_bucket_is_access_denied(
    alice: Any, bob: Any, alices_bucket: str
) -> None:
    bobs_bucket = f"{alices_bucket[:50]}-bob"
    bob.create_bucket(Bucket=bobs_bucket)
    with pytest.raises(ClientError) as excinfo:
        bob.copy_object(
            Bucket=bobs_bucket, Key="stolen", CopySource={"Bucket": alices_bucket, "Key": "secret"}
        )
    assert error_of(excinfo) == ("AccessDenied", 403)
    assert bob.list_objects_v2(Bucket=bobs_bucket)["KeyCount"] == 0


def test_each_credential_owns_its_buckets_under_its_own_id(
    alice: Any, bob: Any, alices_bucket: str
) -> None:
    bobs_bucket = f"{alices_bucket[:50]}-bob"
    bob.create_bucket(Bucket=bobs_bucket)
    alice_id = alice.list_buckets()["Owner"]["ID"]
    bob_id = bob.list_buckets()["Owner"]["ID"]
    assert alice_id != bob_id
    assert_owner_has_full_control(alice.get_bucket_acl(Bucket=alices_bucket), alice_id)
    assert_owner_has_full_control(bob.get_bucket_acl(Bucket=bobs_bucket), bob_id)
