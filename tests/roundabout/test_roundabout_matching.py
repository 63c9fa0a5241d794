"""Claim URLs → (service, namespace, bucket, key), anchored on the parsed hostname."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relay.roundabout.config import parse_roundabout
from relay.roundabout.matching import (
    CustomDomain,
    Service,
    find_signer,
    parse_endpoint,
    parse_url,
    redirectable_as_is,
    virtual_hostable,
)

ACCOUNT = "0123456789abcdef0123456789abcdef"
PUBLIC_ID = "fedcba9876543210fedcba9876543210"
AWS = (Service.AWS, "amazonaws.com")
AWS_CN = (Service.AWS, "amazonaws.com.cn")
R2 = (Service.R2, ACCOUNT)

DOMAINS = (
    CustomDomain(
        "cdn.example.com", parse_endpoint(f"https://{ACCOUNT}.r2.cloudflarestorage.com"),
        "carpark", "blobs/",
    ),
)  # fmt: skip

# url → (service, namespace, bucket, key), or None when the URL names no S3 object.
MATCHES: list[tuple[str, tuple[Service, str, str | None, str] | None]] = [
    # AWS virtual-hosted: global, dot-region, dash-region, dualstack (both orders), China
    ("https://bkt.s3.amazonaws.com/a/b.car", (*AWS, "bkt", "a/b.car")),
    ("https://bkt.s3.eu-west-1.amazonaws.com/k", (*AWS, "bkt", "k")),
    ("https://bkt.s3-us-west-2.amazonaws.com/k", (*AWS, "bkt", "k")),
    ("https://bkt.s3.dualstack.ap-southeast-2.amazonaws.com/k", (*AWS, "bkt", "k")),
    ("https://bkt.s3.us-east-2.dualstack.amazonaws.com/k", (*AWS, "bkt", "k")),
    ("https://bkt.s3.cn-north-1.amazonaws.com.cn/k", (*AWS_CN, "bkt", "k")),
    ("https://bkt.s3.us-gov-west-1.amazonaws.com/k", (*AWS, "bkt", "k")),
    ("https://BKT.S3.AMAZONAWS.COM/k", (*AWS, "bkt", "k")),  # hostnames are case-blind
    ("https://my.dotted.bucket.s3.amazonaws.com/k", (*AWS, "my.dotted.bucket", "k")),
    ("https://bkt.s3.amazonaws.com:443/k", (*AWS, "bkt", "k")),
    # keys are percent-decoded; + stays +
    ("https://bkt.s3.amazonaws.com/a%20b/c+d/%C3%A9", (*AWS, "bkt", "a b/c+d/é")),
    # AWS path style
    ("https://s3.amazonaws.com/bkt/dir/k", (*AWS, "bkt", "dir/k")),
    ("https://s3.eu-central-1.amazonaws.com/bkt/k", (*AWS, "bkt", "k")),
    ("https://s3-eu-west-1.amazonaws.com/bkt/k", (*AWS, "bkt", "k")),
    ("https://s3.dualstack.us-east-1.amazonaws.com/bkt/k", (*AWS, "bkt", "k")),
    ("https://s3-external-1.amazonaws.com/bkt/k", (*AWS, "bkt", "k")),
    ("https://s3.cn-northwest-1.amazonaws.com.cn/bkt/k", (*AWS_CN, "bkt", "k")),
    ("https://s3.amazonaws.com/bkt/", None),  # a bucket, not an object
    ("https://s3.amazonaws.com/bkt", None),
    # s3:// keys are literal, as the aws CLI reads them
    ("s3://bkt/dir/a%20b c", (*AWS, "bkt", "dir/a%20b c")),
    ("s3://bkt/", None),
    ("s3://Not_A_Bucket/k", None),
    # R2: account host (path style) and bucket host, with jurisdictions
    (f"https://{ACCOUNT}.r2.cloudflarestorage.com/carpark/x/y.car", (*R2, "carpark", "x/y.car")),
    (f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/x.car", (*R2, "carpark", "x.car")),
    (
        f"https://{ACCOUNT}.eu.r2.cloudflarestorage.com/carpark/k",
        (Service.R2, f"{ACCOUNT}.eu", "carpark", "k"),
    ),
    (
        f"https://carpark.{ACCOUNT}.fedramp.r2.cloudflarestorage.com/k",
        (Service.R2, f"{ACCOUNT}.fedramp", "carpark", "k"),
    ),
    (f"https://pub-{PUBLIC_ID}.r2.dev/x.car", (Service.R2_PUBLIC, PUBLIC_ID, None, "x.car")),
    # a configured custom domain: endpoint + bucket + prefix
    ("https://cdn.example.com/x%2By.car", (*R2, "carpark", "blobs/x+y.car")),
    # any other origin is read path style, in that origin's own namespace
    ("http://127.0.0.1:9000/bkt/k", (Service.OTHER, "http://127.0.0.1:9000", "bkt", "k")),
    ("HTTP://Minio.Internal:80/bkt/k", (Service.OTHER, "http://minio.internal", "bkt", "k")),
    # near misses: never AWS, never R2
    (
        "https://evil.com/s3.amazonaws.com/k",
        (Service.OTHER, "https://evil.com", "s3.amazonaws.com", "k"),
    ),
    (
        "https://s3.amazonaws.com.evil.com/bkt/k",
        (Service.OTHER, "https://s3.amazonaws.com.evil.com", "bkt", "k"),
    ),
    ("https://bkt.s3.amazonaws.com.evil.com/k", None),  # another origin, and /k has no key
    (
        "https://bkt.s3.amazonaws.com.evil.com/bkt/k",
        (Service.OTHER, "https://bkt.s3.amazonaws.com.evil.com", "bkt", "k"),
    ),
    ("https://bkt.s3-website-us-east-1.amazonaws.com/k", None),
    ("https://bkt.s3-website.eu-west-1.amazonaws.com/k", None),
    (
        "https://s3-website-us-east-1.amazonaws.com/bkt/k",
        (Service.OTHER, "https://s3-website-us-east-1.amazonaws.com", "bkt", "k"),
    ),
    ("https://x.r2.dev/k", None),
    ("https://pub-123.r2.dev/k", None),
    (f"https://pub-{PUBLIC_ID}.r2.dev.evil.com/k", None),
    (
        f"https://{ACCOUNT}.r2.cloudflarestorage.com.evil.com/carpark/k",
        (Service.OTHER, f"https://{ACCOUNT}.r2.cloudflarestorage.com.evil.com", "carpark", "k"),
    ),
    (
        f"https://{ACCOUNT}.apac.r2.cloudflarestorage.com/carpark/k",
        (Service.OTHER, f"https://{ACCOUNT}.apac.r2.cloudflarestorage.com", "carpark", "k"),
    ),
    ("https://s3.amazonaws.com@evil.com/bkt/k", None),  # userinfo: refused outright
    ("https://user:pw@bkt.s3.amazonaws.com/k", None),
    ("https://bkt.s3.amazonaws.com/k?versionId=3", None),  # a query changes the meaning
    ("https://bkt.s3.amazonaws.com/k#frag", None),
    ("https://bkt.s3.amazonaws.com/%FF", None),  # not UTF-8
    ("ftp://bkt.s3.amazonaws.com/k", None),
    ("https://bkt.s3.amazonaws.com:99999/k", None),
]


@pytest.mark.parametrize(("url", "expected"), MATCHES, ids=[url for url, _ in MATCHES])
def test_claim_url_is_read_by_its_anchored_hostname(
    url: str, expected: tuple[Service, str, str | None, str] | None
) -> None:
    location = parse_url(url, DOMAINS)
    if expected is None:
        assert location is None
        return
    assert location is not None
    assert (
        location.endpoint.service,
        location.endpoint.namespace,
        location.bucket,
        location.key,
    ) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://bkt.s3-website-us-east-1.amazonaws.com/k",
        "https://x.r2.dev/k",
        "https://s3.amazonaws.com@evil.com/bkt/k",
        "https://bkt.s3.amazonaws.com.evil.com/k",
    ],
)
def test_near_misses_never_name_an_aws_or_r2_bucket(url: str) -> None:
    location = parse_url(url)
    assert location is None or location.endpoint.service is Service.OTHER


SIGNING = parse_roundabout(
    {
        "buckets": [
            {
                "bucket": "bkt",
                "region": "eu-west-1",
                "access_key_id": "A",
                "secret_access_key": "S",
            },
            {
                "endpoint": f"https://{ACCOUNT}.r2.cloudflarestorage.com",
                "bucket": "carpark",
                "access_key_id": "R",
                "secret_access_key": "S",
                "prefix": "blobs/",
            },
            {
                "endpoint": "http://127.0.0.1:9000",
                "bucket": "bkt",
                "access_key_id": "L",
                "secret_access_key": "S",
            },
        ]
    }
)

SIGNER_CASES = [
    ("https://bkt.s3.amazonaws.com/k", "A"),
    ("https://bkt.s3.us-west-2.amazonaws.com/k", "A"),  # bucket names are global in AWS
    ("s3://bkt/k", "A"),
    ("https://s3.amazonaws.com/bkt/k", "A"),
    ("https://bkt.s3.cn-north-1.amazonaws.com.cn/k", None),  # another partition
    ("https://other.s3.amazonaws.com/k", None),
    (f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/blobs/x", "R"),
    (f"https://{ACCOUNT}.r2.cloudflarestorage.com/carpark/blobs/x", "R"),
    ("https://cdn.example.com/x", "R"),  # domain prefix blobs/ + x
    (f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/elsewhere/x", None),  # outside prefix
    (f"https://carpark.{ACCOUNT}.eu.r2.cloudflarestorage.com/blobs/x", None),  # jurisdiction
    (f"https://carpark.{'1' * 32}.r2.cloudflarestorage.com/blobs/x", None),  # another account
    ("http://127.0.0.1:9000/bkt/k", "L"),
    ("http://localhost:9000/bkt/k", None),  # another origin, even if it is the same machine
    ("https://127.0.0.1:9000/bkt/k", None),
    ("https://evil.com/s3.amazonaws.com/bkt/k", None),
    ("https://s3.amazonaws.com.evil.com/bkt/k", None),
    (f"https://pub-{PUBLIC_ID}.r2.dev/blobs/x", None),
]


@pytest.mark.parametrize(("url", "signer"), SIGNER_CASES, ids=[u for u, _ in SIGNER_CASES])
def test_only_a_configured_bucket_on_the_same_namespace_is_signed(
    url: str, signer: str | None
) -> None:
    location = parse_url(url, DOMAINS)
    found = find_signer(location, SIGNING.buckets) if location is not None else None
    assert (found.access_key_id if found else None) == signer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bkt.s3.amazonaws.com/k", True),
        ("http://127.0.0.1:9/x", True),
        (f"https://pub-{PUBLIC_ID}.r2.dev/x", True),
        ("https://s3.amazonaws.com@evil.com/bkt/k", False),
        ("s3://bkt/k", False),
        ("javascript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("https:///nohost", False),
    ],
)
def test_only_plain_http_urls_are_redirected_to_as_they_are(url: str, expected: bool) -> None:
    assert redirectable_as_is(url) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("bkt", True), ("my-bucket-1", True), ("my.bucket", False), ("Upper", False),
     ("ab", False), ("192.168.1.1", False), ("-bad", False)],
)  # fmt: skip
def test_virtual_hosting_follows_botocore(name: str, expected: bool) -> None:
    assert virtual_hostable(name) is expected


def test_matching_and_config_do_not_load_trio() -> None:
    probe = (
        "import sys, relay.roundabout, relay.roundabout.matching, relay.roundabout.signing;"
        " print('trio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
