"""The POST policy core: decoding, conditions, and signatures against botocore's presigner."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.s3 import postpolicy as pp
from relay.s3.errors import AccessDenied, InvalidPolicyDocument, SignatureDoesNotMatch

SECRETS = {"alice": "alice-secret"}


def encoded(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("not base64!", "Invalid Policy: Invalid JSON."),
        (base64.b64encode(b"{nope").decode(), "Invalid Policy: Invalid JSON."),
        (encoded({"conditions": []}), "Invalid Policy: Policy missing expiration."),
        (encoded({"expiration": "2030-01-01T00:00:00Z"}),
         "Invalid Policy: Policy missing conditions."),
        (encoded({"expiration": "tomorrow", "conditions": []}),
         "Invalid Policy: Invalid 'expiration' value: 'tomorrow'"),
        (encoded({"expiration": "2030-01-01T00:00:00Z", "conditions": [["in", "$key", "a"]]}),
         'Invalid Policy: Invalid Condition: ["in", "$key", "a"]'),
        (encoded({"expiration": "2030-01-01T00:00:00Z",
                  "conditions": [["content-length-range", 10, 1]]}),
         "Invalid Policy: Invalid Condition: [\"content-length-range\", 10, 1]"),
    ],
)  # fmt: skip
def test_policies_that_do_not_parse_are_refused(policy: str, message: str) -> None:
    with pytest.raises(InvalidPolicyDocument) as raised:
        pp.decode(policy)
    assert str(raised.value) == message


def test_conditions_hold_as_s3_evaluates_them() -> None:
    policy = pp.decode(
        encoded({
            "expiration": "2030-01-01T00:00:00.000Z",
            "conditions": [
                {"bucket": "photos"},
                ["starts-with", "$key", "up/"],
                ["starts-with", "$Content-Type", "image/"],
                ["eq", "$x-amz-meta-tag", ""],
                ["content-length-range", 1, 2048],
            ],
        })
    )  # fmt: skip
    assert policy.content_length_range == (1, 2048)
    good = {"bucket": "photos", "key": "up/a", "content-type": "image/png, image/jpeg"}
    pp.check_fields(policy, good)  # a missing field is the empty string
    with pytest.raises(AccessDenied, match=r"Policy Condition failed: \[\"starts-with\""):
        pp.check_fields(policy, {**good, "content-type": "image/png, text/html"})
    with pytest.raises(AccessDenied, match=r'\["eq", "\$bucket", "photos"\]'):
        pp.check_fields(policy, {**good, "bucket": "other"})
    with pytest.raises(AccessDenied, match="Extra input fields: acl"):
        pp.check_fields(policy, {**good, "acl": "private"})
    pp.check_fields(policy, {**good, "x-ignore-me": "1", "file": "", "policy": "p"})


def test_expiry_is_checked_against_the_callers_clock() -> None:
    policy = pp.decode(encoded({"expiration": "2030-01-01T00:00:00Z", "conditions": []}))
    pp.check_expiry(policy, policy.expiration)
    with pytest.raises(AccessDenied, match="Policy expired"):
        pp.check_expiry(policy, policy.expiration + 1)


@functools.cache
def presigner(version: str) -> Any:
    return boto3.client(
        "s3", endpoint_url="http://relay.test", region_name="us-east-1",
        aws_access_key_id="alice", aws_secret_access_key=SECRETS["alice"],
        config=Config(signature_version=version),
    )  # fmt: skip


def presigned_fields(version: str, key: str, conditions: list[Any]) -> dict[str, str]:
    post = presigner(version).generate_presigned_post(
        "photos", key, Conditions=conditions, ExpiresIn=300
    )
    return {name.lower(): value for name, value in post["fields"].items()}


@settings(max_examples=25, deadline=None)
@given(
    version=st.sampled_from(["s3v4", "s3"]),
    key=st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k),
    meta=st.text(max_size=20),
    flip=st.integers(min_value=0),
)
def test_botocores_presigned_posts_verify_and_any_tampering_does_not(
    version: str, key: str, meta: str, flip: int
) -> None:
    fields = presigned_fields(version, key, [{"x-amz-meta-note": meta}])
    auth = pp.verify_signature(fields, SECRETS.get, region="us-east-1")
    assert auth.access_key == "alice"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert {"key": key} in policy["conditions"]
    # Change one character of the signed policy: the signature no longer holds.
    raw = bytearray(base64.b64decode(fields["policy"]))
    raw[flip % len(raw)] ^= 0x01
    tampered = {**fields, "policy": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(SignatureDoesNotMatch):
        pp.verify_signature(tampered, SECRETS.get, region="us-east-1")
