# ruff: noqa: E501  (the tables read best one case a line)
"""The bucket policy language: each operator, wildcards, Not*, deny wins, malformed
documents and the messages that point at the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.access.policy import MalformedPolicy, Policy, parse

BUCKET = "photos"
ARN = "arn:aws:s3:::photos"


def policy(*statements: dict[str, Any]) -> Policy:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    return parse(json.dumps(document).encode(), BUCKET, known_principals=["ALICE", "BOB"])


def allow(**fields: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"{ARN}/*",
        **fields,
    }


def with_condition(operator: str, key: str, values: Any) -> Policy:
    return policy(allow(Condition={operator: {key: values}}))


def answer(p: Policy, context: dict[str, Any], principal: str | None = None) -> str | None:
    return p.evaluate(principal, "s3:GetObject", f"{ARN}/a.jpg", context)


@pytest.mark.parametrize(
    ("operator", "key", "values", "context", "expected"),
    [
        ("StringEquals", "aws:UserAgent", "curl", {"aws:useragent": "curl"}, "Allow"),
        ("StringEquals", "aws:UserAgent", "curl", {"aws:useragent": "Curl"}, None),
        ("StringEquals", "aws:UserAgent", "curl", {}, None),
        ("StringNotEquals", "aws:UserAgent", "curl", {"aws:useragent": "wget"}, "Allow"),
        ("StringNotEquals", "aws:UserAgent", "curl", {"aws:useragent": "curl"}, None),
        ("StringNotEquals", "aws:UserAgent", "curl", {}, "Allow"),
        ("StringEqualsIgnoreCase", "aws:UserAgent", "CURL", {"aws:useragent": "curl"}, "Allow"),
        ("StringNotEqualsIgnoreCase", "aws:UserAgent", "CURL", {"aws:useragent": "curl"}, None),
        ("StringLike", "aws:Referer", "https://*.example.com/*", {"aws:referer": "https://www.example.com/x"}, "Allow"),
        ("StringLike", "aws:Referer", "https://*.example.com/*", {"aws:referer": "https://evil.com/x"}, None),
        ("StringLike", "s3:prefix", "ho?e/*", {"s3:prefix": "home/a"}, "Allow"),
        ("StringNotLike", "s3:prefix", "home/*", {"s3:prefix": "etc/"}, "Allow"),
        ("StringNotLike", "s3:prefix", "home/*", {"s3:prefix": "home/a"}, None),
        ("NumericEquals", "s3:max-keys", 10, {"s3:max-keys": "10"}, "Allow"),
        ("NumericNotEquals", "s3:max-keys", 10, {"s3:max-keys": "10"}, None),
        ("NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "9"}, "Allow"),
        ("NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "10"}, None),
        ("NumericLessThanEquals", "s3:max-keys", "10", {"s3:max-keys": "10"}, "Allow"),
        ("NumericGreaterThan", "s3:max-keys", "10", {"s3:max-keys": "11"}, "Allow"),
        ("NumericGreaterThan", "s3:max-keys", "10", {"s3:max-keys": "x"}, None),
        ("NumericGreaterThanEquals", "s3:max-keys", "10", {"s3:max-keys": "9"}, None),
        ("DateLessThan", "aws:CurrentTime", "2027-01-01T00:00:00Z", {"aws:currenttime": "2026-12-06T07:00:00Z"}, "Allow"),
        ("DateLessThan", "aws:CurrentTime", "2026-01-01T00:00:00Z", {"aws:currenttime": "2026-12-06T07:00:00Z"}, None),
        ("DateGreaterThan", "aws:CurrentTime", "2026-01-01T00:00:00Z", {"aws:currenttime": "2026-12-06T07:00:00Z"}, "Allow"),
        ("DateEquals", "aws:CurrentTime", "1798527600", {"aws:currenttime": "2026-12-29T07:00:00Z"}, "Allow"),
        ("DateNotEquals", "aws:CurrentTime", "2026-01-01T00:00:00Z", {"aws:currenttime": "2026-12-06T07:00:00Z"}, "Allow"),
        ("DateLessThanEquals", "aws:CurrentTime", "2026-12-06T07:00:00Z", {"aws:currenttime": "2026-12-06T07:00:00Z"}, "Allow"),
        ("DateGreaterThanEquals", "aws:CurrentTime", "2026-12-06T07:00:01Z", {"aws:currenttime": "2026-12-06T07:00:00Z"}, None),
        ("Bool", "aws:SecureTransport", "false", {"aws:securetransport": "false"}, "Allow"),
        ("Bool", "aws:SecureTransport", True, {"aws:securetransport": "false"}, None),
        ("IpAddress", "aws:SourceIp", "127.0.0.0/8", {"aws:sourceip": "127.0.0.1"}, "Allow"),
        ("IpAddress", "aws:SourceIp", ["10.0.0.0/8", "192.168.1.7/32"], {"aws:sourceip": "192.168.1.7"}, "Allow"),
        ("IpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:sourceip": "127.0.0.1"}, None),
        ("IpAddress", "aws:SourceIp", "2001:db8::/32", {"aws:sourceip": "2001:db8::1"}, "Allow"),
        ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:sourceip": "127.0.0.1"}, "Allow"),
        ("NotIpAddress", "aws:SourceIp", "127.0.0.0/8", {"aws:sourceip": "127.0.0.1"}, None),
        ("Null", "s3:x-amz-acl", "true", {}, "Allow"),
        ("Null", "s3:x-amz-acl", "true", {"s3:x-amz-acl": "private"}, None),
        ("Null", "s3:x-amz-acl", "false", {"s3:x-amz-acl": "private"}, "Allow"),
        ("StringEqualsIfExists", "s3:x-amz-acl", "private", {}, "Allow"),
        ("StringEqualsIfExists", "s3:x-amz-acl", "private", {"s3:x-amz-acl": "public-read"}, None),
        ("StringEquals", "s3:ExistingObjectTag/Class", "public", {"s3:existingobjecttag/Class": "public"}, "Allow"),
        ("StringEquals", "s3:ExistingObjectTag/Class", "public", {"s3:existingobjecttag/class": "public"}, None),
    ],
)  # fmt: skip
def test_each_condition_operator(
    operator: str, key: str, values: Any, context: dict[str, Any], expected: str | None
) -> None:
    assert answer(with_condition(operator, key, values), context) == expected


def test_conditions_and_across_operators_and_keys_or_across_values() -> None:
    p = policy(
        allow(
            Condition={
                "StringEquals": {"aws:UserAgent": ["a", "b"], "s3:prefix": "x"},
                "IpAddress": {"aws:SourceIp": "127.0.0.1/32"},
            }
        )
    )
    good = {"aws:useragent": "b", "s3:prefix": "x", "aws:sourceip": "127.0.0.1"}
    assert answer(p, good) == "Allow"
    assert answer(p, {**good, "s3:prefix": "y"}) is None
    assert answer(p, {**good, "aws:sourceip": "127.0.0.2"}) is None


def test_deny_wins_over_allow() -> None:
    p = policy(allow(), {**allow(), "Effect": "Deny", "Resource": f"{ARN}/secret/*"})
    assert answer(p, {}) == "Allow"
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/secret/k", {}) == "Deny"


@pytest.mark.parametrize(
    ("action_patterns", "action", "hit"),
    [
        ("s3:*", "s3:PutObject", True),
        ("s3:Get*", "s3:GetObject", True),
        ("s3:get*", "s3:GetObject", True),  # actions are case-insensitive
        ("s3:Get*", "s3:PutObject", False),
        ("s3:*Object", "s3:DeleteObject", True),
        ("s3:?etObject", "s3:GetObject", True),
        (["s3:ListBucket", "s3:GetObject"], "s3:ListBucket", True),
        ("*", "s3:ListBucket", True),
    ],
)
def test_action_wildcards(action_patterns: Any, action: str, hit: bool) -> None:
    p = policy(allow(Action=action_patterns, Resource=[ARN, f"{ARN}/*"]))
    assert (p.evaluate(None, action, f"{ARN}/k", {}) == "Allow") is hit


def test_not_action_not_resource_not_principal() -> None:
    not_action = {k: v for k, v in allow().items() if k != "Action"} | {"NotAction": "s3:Delete*"}
    p = policy(not_action)
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/k", {}) == "Allow"
    assert p.evaluate(None, "s3:DeleteObject", f"{ARN}/k", {}) is None
    not_resource = {k: v for k, v in allow().items() if k != "Resource"} | {
        "NotResource": f"{ARN}/private/*"
    }
    p = policy(not_resource)
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/public/k", {}) == "Allow"
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/private/k", {}) is None
    not_principal = {k: v for k, v in allow().items() if k != "Principal"} | {
        "Effect": "Deny",
        "NotPrincipal": {"AWS": "ALICE"},
    }
    p = policy(allow(), not_principal)
    assert p.evaluate("ALICE", "s3:GetObject", f"{ARN}/k", {}) == "Allow"
    assert p.evaluate("BOB", "s3:GetObject", f"{ARN}/k", {}) == "Deny"
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/k", {}) == "Deny"


@pytest.mark.parametrize(
    ("principal", "who", "hit"),
    [
        ("*", None, True),
        ("*", "BOB", True),
        ({"AWS": "*"}, None, True),
        ({"AWS": "ALICE"}, "ALICE", True),
        ({"AWS": "ALICE"}, "BOB", False),
        ({"AWS": "ALICE"}, None, False),
        ({"AWS": ["arn:aws:iam::BOB:root"]}, "BOB", True),
        ({"CanonicalUser": "BOB"}, "BOB", True),
    ],
)
def test_principals(principal: Any, who: str | None, hit: bool) -> None:
    p = policy(allow(Principal=principal))
    assert (answer(p, {}, who) == "Allow") is hit


def test_resource_wildcards_are_case_sensitive() -> None:
    p = policy(allow(Resource=f"{ARN}/Public/*.jpg"))
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/Public/a/b.jpg", {}) == "Allow"
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/public/b.jpg", {}) is None
    assert p.evaluate(None, "s3:GetObject", f"{ARN}/Public/b.png", {}) is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "Policies must be valid JSON"),
        (b"[]", "first byte must be '{'"),
        (b'{"Version": "2012-10-17"}', "Missing required field Statement"),
        (b'{"Version": "2020-01-01", "Statement": []}', "valid version"),
        (b'{"Statement": [], "Foo": 1}', "Unknown field Foo"),
    ],
)
def test_malformed_documents(document: bytes, message: str) -> None:
    with pytest.raises(MalformedPolicy, match=message):
        parse(document, BUCKET)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Effect": "Permit"}, r"Invalid effect .* statement 2 \(Sid 'two'\), field Effect"),
        ({"Action": "s3:Fly"}, r"Policy has invalid action in statement 2 \(Sid 'two'\), field Action: \"s3:Fly\""),
        ({"Action": "ec2:*"}, "Policy has invalid action"),
        ({"Resource": "arn:aws:s3:::other/*"}, r"invalid resource \(not in bucket 'photos'\).*field Resource"),
        ({"Resource": "photos/*"}, "Policy has invalid resource"),
        ({"Principal": {"AWS": "MALLORY"}}, r"Invalid principal in policy .*field Principal: \"MALLORY\""),
        ({"Principal": {"Service": "x"}}, "Invalid principal"),
        ({"Principal": None}, "Invalid principal"),
        ({"Condition": {"StringFoo": {"aws:UserAgent": "x"}}}, "Invalid Condition type.*StringFoo"),
        ({"Condition": {"StringEquals": {"s3:flavour": "x"}}}, "invalid condition key.*s3:flavour"),
        ({"Condition": {"NumericEquals": {"s3:max-keys": "ten"}}}, "Invalid value for NumericEquals"),
        ({"Condition": {"IpAddress": {"aws:SourceIp": "300.1.1.1"}}}, "Invalid value for IpAddress"),
        ({"Condition": {"DateLessThan": {"aws:CurrentTime": "soon"}}}, "Invalid value for DateLessThan"),
        ({"Condition": {"Bool": {"aws:SecureTransport": "yes"}}}, "Invalid value for Bool"),
        ({"NotAction": "s3:GetObject"}, "Only one of Action and NotAction"),
        ({"Colour": "red"}, "Unknown field.*Colour"),
        ({"Sid": "one"}, "must be unique"),
    ],
)  # fmt: skip
def test_malformed_statements_name_the_statement_and_field(
    change: dict[str, Any], message: str
) -> None:
    second = {**allow(Sid="two"), **change}
    document = {"Version": "2012-10-17", "Statement": [allow(Sid="one"), second]}
    with pytest.raises(MalformedPolicy, match=message):
        parse(json.dumps(document).encode(), BUCKET, known_principals=["ALICE"])


def test_missing_principal_and_action_are_named() -> None:
    for field in ("Principal", "Action", "Resource"):
        statement = {k: v for k, v in allow().items() if k != field}
        with pytest.raises(MalformedPolicy, match=f"Missing required field {field}"):
            parse(json.dumps({"Statement": statement}).encode(), BUCKET)


def test_too_large_a_policy_is_refused() -> None:
    statements = [allow(Sid=f"s{i}") for i in range(200)]
    with pytest.raises(MalformedPolicy, match="maximum allowed document size"):
        parse(json.dumps({"Statement": statements}).encode(), BUCKET)


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        (allow(), True),
        (allow(Principal={"AWS": "ALICE"}), False),
        ({**allow(), "Effect": "Deny"}, False),
        (allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/16"}}), False),
        (allow(Condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}), True),
        (allow(Condition={"StringLike": {"aws:UserAgent": "x"}}), True),
        (allow(Condition={"StringEquals": {"aws:SourceAccount": "x"}}), False),
    ],
)
def test_what_makes_a_policy_public(statement: dict[str, Any], public: bool) -> None:
    assert policy(statement).is_public() is public
