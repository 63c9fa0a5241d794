"""A bucket's CORS rules: parsed, validated, rendered and matched. Pure: no I/O, no trio.

Theory of operation. PutBucketCors sends S3's ``CORSConfiguration`` document; ``parse``
validates it as S3 does (MalformedXML for a document that does not fit the schema,
InvalidRequest for a rule S3 refuses by name) and ``render`` gives back the document
GetBucketCors answers, so the rules are stored as that canonical document and parsed
again on each use (a few hundred bytes; no state to keep in step with the registry).

Matching follows S3: the *first* rule that allows the request wins.

- a preflight (``OPTIONS``) matches a rule when its Origin matches one AllowedOrigin, its
  Access-Control-Request-Method is one AllowedMethod, and every name in
  Access-Control-Request-Headers matches one AllowedHeader (case-insensitively);
- an actual request (any other method, carrying Origin) matches on origin and method.

An AllowedOrigin or AllowedHeader holds at most one ``*``, which matches any run of
characters (``*`` alone matches anything). A matched rule's answer is
``Access-Control-Allow-Origin`` (``*`` when the rule allows any origin, else the request's
Origin echoed, with ``Access-Control-Allow-Credentials: true``, as S3 does), the rule's
methods, the requested headers (preflight), its ExposeHeaders and MaxAgeSeconds. Any
response of a bucket with rules to a request with an Origin says ``Vary`` on the headers
the answer depends on, so a cache never serves one origin's answer to another.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape

from relay.s3.errors import InvalidRequest, MalformedXML

# S3's limits: at most 100 rules, a document of at most 64 KiB, an ID of 255 characters.
MAX_RULES: Final = 100
MAX_DOCUMENT_BYTES: Final = 64 << 10
MAX_ID_CHARS: Final = 255
ALLOWED_METHODS: Final = ("GET", "PUT", "HEAD", "POST", "DELETE")
VARY: Final = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
_NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True, slots=True)
class CorsRule:
    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None


# -- the document ---------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes) -> tuple[CorsRule, ...]:
    """The rules of a ``CORSConfiguration`` document, or the error S3 answers with."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise MalformedXML()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    if _local(root.tag) != "CORSConfiguration":
        raise MalformedXML()
    rules = []
    for element in root:
        if _local(element.tag) != "CORSRule":
            raise MalformedXML()
        rules.append(_parse_rule(element))
    if not rules or len(rules) > MAX_RULES:
        raise MalformedXML()
    return tuple(rules)


def _parse_rule(element: ET.Element) -> CorsRule:
    values: dict[str, list[str]] = {}
    for child in element:
        if len(child):
            raise MalformedXML()
        values.setdefault(_local(child.tag), []).append((child.text or "").strip())
    unknown = set(values) - {
        "ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader", "MaxAgeSeconds",
    }  # fmt: skip
    origins = values.get("AllowedOrigin", [])
    methods = values.get("AllowedMethod", [])
    if unknown or not origins or not methods:
        raise MalformedXML()
    if len(values.get("ID", [])) > 1 or len(values.get("MaxAgeSeconds", [])) > 1:
        raise MalformedXML()
    for method in methods:
        if method not in ALLOWED_METHODS:
            raise InvalidRequest(
                "Found unsupported HTTP method in CORS config. Unsupported method is " + method
            )
    for origin in origins:
        if origin.count("*") > 1:
            raise InvalidRequest(f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    headers = values.get("AllowedHeader", [])
    for header in headers:
        if header.count("*") > 1:
            raise InvalidRequest(f'AllowedHeader "{header}" can not have more than one wildcard.')
    rule_id = values["ID"][0] if "ID" in values else None
    if rule_id is not None and len(rule_id) > MAX_ID_CHARS:
        raise InvalidRequest("ID length should not exceed allowed limit of 255")
    max_age = None
    if "MaxAgeSeconds" in values:
        text = values["MaxAgeSeconds"][0]
        if not text.lstrip("-").isdigit():
            raise MalformedXML()
        max_age = int(text)
    return CorsRule(
        allowed_origins=tuple(origins),
        allowed_methods=tuple(methods),
        allowed_headers=tuple(headers),
        expose_headers=tuple(values.get("ExposeHeader", [])),
        max_age_seconds=max_age,
        id=rule_id,
    )


def render(rules: Sequence[CorsRule]) -> bytes:
    """The ``CORSConfiguration`` document GetBucketCors answers (and relay stores)."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<CORSConfiguration xmlns="{_NAMESPACE}">']
    for rule in rules:
        parts.append("<CORSRule>")
        if rule.id is not None:
            parts.append(f"<ID>{escape(rule.id)}</ID>")
        parts.extend(f"<AllowedHeader>{escape(v)}</AllowedHeader>" for v in rule.allowed_headers)
        parts.extend(f"<AllowedMethod>{escape(v)}</AllowedMethod>" for v in rule.allowed_methods)
        parts.extend(f"<AllowedOrigin>{escape(v)}</AllowedOrigin>" for v in rule.allowed_origins)
        parts.extend(f"<ExposeHeader>{escape(v)}</ExposeHeader>" for v in rule.expose_headers)
        if rule.max_age_seconds is not None:
            parts.append(f"<MaxAgeSeconds>{rule.max_age_seconds}</MaxAgeSeconds>")
        parts.append("</CORSRule>")
    parts.append("</CORSConfiguration>")
    return "".join(parts).encode("utf-8")


# -- matching -------------------------------------------------------------------------


def wildcard_match(pattern: str, value: str) -> bool:
    """``pattern`` with at most one ``*`` (any run of characters) against ``value``."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def _origin_allowed(rule: CorsRule, origin: str) -> bool:
    return any(wildcard_match(allowed, origin) for allowed in rule.allowed_origins)


def _header_allowed(rule: CorsRule, header: str) -> bool:
    return any(wildcard_match(allowed.lower(), header) for allowed in rule.allowed_headers)


def requested_headers(value: str | None) -> tuple[str, ...]:
    """The names of an Access-Control-Request-Headers value, lowercase, in order."""
    if not value:
        return ()
    return tuple(name.strip().lower() for name in value.split(",") if name.strip())


def match_preflight(
    rules: Sequence[CorsRule], origin: str, method: str, headers: Sequence[str]
) -> CorsRule | None:
    """The first rule allowing a preflight for ``origin``, ``method`` and (lowercase)
    ``headers``, or None."""
    for rule in rules:
        if (
            _origin_allowed(rule, origin)
            and method in rule.allowed_methods
            and all(_header_allowed(rule, header) for header in headers)
        ):
            return rule
    return None


def match_request(rules: Sequence[CorsRule], origin: str, method: str) -> CorsRule | None:
    """The first rule allowing an actual request from ``origin`` with ``method``."""
    for rule in rules:
        if _origin_allowed(rule, origin) and method in rule.allowed_methods:
            return rule
    return None


def _allow_origin(rule: CorsRule, origin: str) -> list[tuple[str, str]]:
    if "*" in rule.allowed_origins:
        return [("access-control-allow-origin", "*")]
    return [
        ("access-control-allow-origin", origin),
        ("access-control-allow-credentials", "true"),
    ]


def _common(rule: CorsRule) -> list[tuple[str, str]]:
    headers = [("access-control-allow-methods", ", ".join(rule.allowed_methods))]
    if rule.expose_headers:
        headers.append(("access-control-expose-headers", ", ".join(rule.expose_headers)))
    if rule.max_age_seconds is not None:
        headers.append(("access-control-max-age", str(rule.max_age_seconds)))
    return headers


def preflight_headers(rule: CorsRule, origin: str, headers: Sequence[str]) -> list[tuple[str, str]]:
    """The headers of a 200 preflight answer from ``rule``."""
    answer = _allow_origin(rule, origin) + _common(rule)
    if headers:
        answer.append(("access-control-allow-headers", ", ".join(headers)))
    answer.append(("vary", VARY))
    return answer


def response_headers(rules: Sequence[CorsRule], origin: str, method: str) -> list[tuple[str, str]]:
    """What an actual response of a bucket with ``rules`` adds for a request with Origin:
    the matched rule's headers (none when no rule matches), and Vary in any case."""
    rule = match_request(rules, origin, method)
    answer = [] if rule is None else _allow_origin(rule, origin) + _common(rule)
    answer.append(("vary", VARY))
    return answer
