"""The CORS rules core: S3's CORSConfiguration parsed, validated, rendered and matched."""

from __future__ import annotations

import pytest

from relay.s3 import corsrules as cr
from relay.s3.errors import InvalidRequest, MalformedXML

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def config(*rules: str) -> bytes:
    return f"<CORSConfiguration {NS}>{''.join(rules)}</CORSConfiguration>".encode()


def rule(*elements: str) -> str:
    return f"<CORSRule>{''.join(elements)}</CORSRule>"


EXAMPLE = config(
    rule(
        "<ID>uploads</ID>",
        "<AllowedOrigin>http://*.example.com</AllowedOrigin>",
        "<AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>",
        "<AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>",
        "<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds>",
    ),
    rule("<AllowedOrigin>*</AllowedOrigin>", "<AllowedMethod>GET</AllowedMethod>"),
)


def test_a_configuration_parses_into_its_rules_and_renders_back() -> None:
    rules = cr.parse(EXAMPLE)
    assert rules == (
        cr.CorsRule(
            allowed_origins=("http://*.example.com",),
            allowed_methods=("PUT", "POST"),
            allowed_headers=("x-amz-*", "Content-Type"),
            expose_headers=("ETag",),
            max_age_seconds=3000,
            id="uploads",
        ),
        cr.CorsRule(allowed_origins=("*",), allowed_methods=("GET",)),
    )
    assert cr.parse(cr.render(rules)) == rules
    assert cr.render(rules).startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert b"<ID>uploads</ID><AllowedHeader>x-amz-*</AllowedHeader>" in cr.render(rules)


@pytest.mark.parametrize(
    ("document", "error", "message"),
    [
        (b"<CORSConfiguration>", MalformedXML, None),
        (config(), MalformedXML, None),  # no rule at all
        (b"<Other/>", MalformedXML, None),
        (config(rule("<AllowedMethod>GET</AllowedMethod>")), MalformedXML, None),
        (config(rule("<AllowedOrigin>*</AllowedOrigin>")), MalformedXML, None),
        (config(rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
                     "<Bogus>1</Bogus>")), MalformedXML, None),
        (config(rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
                     "<MaxAgeSeconds>soon</MaxAgeSeconds>")), MalformedXML, None),
        (config(*[rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>")]
                * 101), MalformedXML, None),
        (config(rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>")),
         InvalidRequest,
         "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"),
        (config(rule("<AllowedOrigin>http://*.*.com</AllowedOrigin>"
                     "<AllowedMethod>GET</AllowedMethod>")),
         InvalidRequest, 'AllowedOrigin "http://*.*.com" can not have more than one wildcard.'),
        (config(rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
                     "<AllowedHeader>x-*-*</AllowedHeader>")),
         InvalidRequest, 'AllowedHeader "x-*-*" can not have more than one wildcard.'),
        (config(rule(f"<ID>{'i' * 256}</ID><AllowedOrigin>*</AllowedOrigin>"
                     "<AllowedMethod>GET</AllowedMethod>")), InvalidRequest, None),
    ],
)  # fmt: skip
def test_configurations_s3_refuses_are_refused_with_its_errors(
    document: bytes, error: type[Exception], message: str | None
) -> None:
    with pytest.raises(error) as raised:
        cr.parse(document)
    if message is not None:
        assert str(raised.value) == message


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("*", "http://anything", True),
        ("http://a.com", "http://a.com", True),
        ("http://a.com", "http://a.com:8080", False),
        ("http://*.a.com", "http://x.a.com", True),
        ("http://*.a.com", "http://x.y.a.com", True),
        ("http://*.a.com", "http://a.com", False),
        ("http://localhost:*", "http://localhost:5173", True),
        ("x-amz-*", "x-amz-date", True),
        ("ab*ba", "aba", False),  # head and tail may not overlap
        ("ab*ba", "abba", True),
    ],
)
def test_one_wildcard_matches_any_run_of_characters(
    pattern: str, value: str, matches: bool
) -> None:
    assert cr.wildcard_match(pattern, value) is matches


RULES = cr.parse(EXAMPLE)


@pytest.mark.parametrize(
    ("origin", "method", "headers", "rule_index"),
    [
        ("http://app.example.com", "PUT", (), 0),
        ("http://app.example.com", "PUT", ("x-amz-date", "content-type"), 0),
        ("http://app.example.com", "PUT", ("authorization",), None),  # header not allowed
        ("http://app.example.com", "DELETE", (), None),  # method not allowed
        ("http://app.example.com", "GET", (), 1),  # the second rule, for any origin
        ("http://other.org", "GET", (), 1),
        ("http://other.org", "GET", ("x-amz-date",), None),  # rule 1 allows no header
        ("http://other.org", "PUT", (), None),
        ("https://app.example.com", "PUT", (), None),  # scheme is part of the origin
    ],
)
def test_a_preflight_matches_the_first_rule_allowing_origin_method_and_headers(
    origin: str, method: str, headers: tuple[str, ...], rule_index: int | None
) -> None:
    found = cr.match_preflight(RULES, origin, method, headers)
    assert found == (None if rule_index is None else RULES[rule_index])


def test_requested_headers_are_split_and_lowercased() -> None:
    assert cr.requested_headers("Content-Type, X-Amz-Date,,") == ("content-type", "x-amz-date")
    assert cr.requested_headers(None) == ()


def test_preflight_answer_echoes_a_named_origin_with_credentials() -> None:
    answer = cr.preflight_headers(RULES[0], "http://app.example.com", ("content-type",))
    assert answer == [
        ("access-control-allow-origin", "http://app.example.com"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "PUT, POST"),
        ("access-control-expose-headers", "ETag"),
        ("access-control-max-age", "3000"),
        ("access-control-allow-headers", "content-type"),
        ("vary", cr.VARY),
    ]


def test_preflight_answer_for_any_origin_is_a_star_without_credentials() -> None:
    answer = dict(cr.preflight_headers(RULES[1], "http://other.org", ()))
    assert answer["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer
    assert "access-control-allow-headers" not in answer


def test_actual_responses_carry_the_matching_rule_and_vary_in_any_case() -> None:
    allowed = dict(cr.response_headers(RULES, "http://app.example.com", "PUT"))
    assert allowed["access-control-allow-origin"] == "http://app.example.com"
    assert allowed["access-control-expose-headers"] == "ETag"
    assert allowed["vary"] == cr.VARY
    refused = cr.response_headers(RULES, "http://other.org", "DELETE")
    assert refused == [("vary", cr.VARY)]
