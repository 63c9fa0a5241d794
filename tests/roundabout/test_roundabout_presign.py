"""Presigned redirects are byte-identical to boto3's ``generate_presigned_url``."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.config import Config as BotoConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.roundabout.config import parse_roundabout
from relay.roundabout.matching import SigningBucket
from relay.roundabout.signing import presigned_get

ACCOUNT = "0123456789abcdef0123456789abcdef"
WHEN = datetime(2025, 3, 14, 15, 9, 26)  # naive UTC, as botocore's clock returns it
NOW = WHEN.replace(tzinfo=UTC).timestamp()
KEYS = ["plain.car", "a b/c d.car", "x+y=z&w", "ünï/cødé ✓.bin", "~tilde/(paren)*!'", "/lead"]


def signing_bucket(**table: Any) -> SigningBucket:
    table.setdefault("access_key_id", "AKIAEXAMPLE")
    table.setdefault("secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    return parse_roundabout({"buckets": [table]}).buckets[0]


@functools.cache
def boto3_client(
    region: str, access_key: str, secret: str, endpoint_url: str | None, addressing: str
) -> Any:
    """One client per setup: making a boto3 client costs tens of milliseconds."""
    return boto3.session.Session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=BotoConfig(
            signature_version="s3v4",
            # the regional host in us-east-1 too (botocore's default there is s3.amazonaws.com)
            s3={"addressing_style": addressing, "us_east_1_regional_endpoint": "regional"},
        ),
    )


def boto3_url(
    bucket: SigningBucket,
    key: str,
    expires: int,
    *,
    endpoint_url: str | None = None,
    addressing: str = "virtual",
) -> str:
    client = boto3_client(
        bucket.region, bucket.access_key_id, bucket.secret_access_key, endpoint_url, addressing
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket.bucket, "Key": key}, ExpiresIn=expires
        )
    return url


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1"])
def test_aws_presign_is_botocores_virtual_hosted_url(region: str, key: str) -> None:
    bucket = signing_bucket(bucket="claims-bucket", region=region)
    ours = presigned_get(bucket, key, now=NOW, expires_seconds=259200)
    suffix = ".com.cn" if region.startswith("cn-") else ".com"
    assert ours.startswith(f"https://claims-bucket.s3.{region}.amazonaws{suffix}/")
    assert ours == boto3_url(bucket, key, 259200)


def test_aws_bucket_with_dots_is_presigned_path_style_like_botocore() -> None:
    bucket = signing_bucket(bucket="my.dotted.bucket", region="eu-west-1")
    ours = presigned_get(bucket, "k", now=NOW, expires_seconds=60)
    assert ours.startswith("https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/k?")
    assert ours == boto3_url(bucket, "k", 60)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("jurisdiction", ["", ".eu", ".fedramp"])
def test_r2_presign_is_botocores_url_on_the_bucket_host(jurisdiction: str, key: str) -> None:
    endpoint = f"https://{ACCOUNT}{jurisdiction}.r2.cloudflarestorage.com"
    bucket = signing_bucket(endpoint=endpoint, bucket="carpark")
    assert bucket.region == "auto"
    ours = presigned_get(bucket, key, now=NOW, expires_seconds=3600)
    assert ours.startswith(f"https://carpark.{ACCOUNT}{jurisdiction}.r2.cloudflarestorage.com/")
    assert "%2Fauto%2Fs3%2Faws4_request" in ours
    assert ours == boto3_url(bucket, key, 3600, endpoint_url=endpoint)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "http://minio.internal:9000"])
def test_other_endpoints_are_presigned_path_style_like_botocore(endpoint: str) -> None:
    bucket = signing_bucket(endpoint=endpoint, bucket="blobs", region="us-east-1")
    ours = presigned_get(bucket, "dir/a b.car", now=NOW, expires_seconds=1)
    assert ours.startswith(f"{endpoint}/blobs/dir/a%20b.car?")
    # botocore would virtual-host a DNS name on a custom endpoint; relay never guesses that
    # an unknown server supports it, so the reference is botocore in path style.
    assert ours == boto3_url(bucket, "dir/a b.car", 1, endpoint_url=endpoint, addressing="path")


_R2_BUCKET = signing_bucket(endpoint=f"https://{ACCOUNT}.r2.cloudflarestorage.com", bucket="cp")


@settings(max_examples=60, deadline=None)
@given(
    key=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40),
    expires=st.integers(1, 604800),
)
def test_any_key_and_expiry_presign_like_botocore(key: str, expires: int) -> None:
    endpoint = f"https://{ACCOUNT}.r2.cloudflarestorage.com"
    assert presigned_get(_R2_BUCKET, key, now=NOW, expires_seconds=expires) == boto3_url(
        _R2_BUCKET, key, expires, endpoint_url=endpoint
    )
