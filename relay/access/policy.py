"""S3's bucket policy language: parse, validate, evaluate. Pure: no I/O, no trio.

A policy is JSON: ``Version``, optional ``Id``, and ``Statement`` (one object or a list).
Each statement has an ``Effect`` (Allow / Deny), a ``Principal`` or ``NotPrincipal``
(``"*"``, ``{"AWS": ...}`` or ``{"CanonicalUser": ...}``: relay's principals are its
access key ids, also written ``arn:aws:iam::<key id>:root``), an ``Action`` or
``NotAction`` (``s3:GetObject``, wildcards ``*`` and ``?``, case-insensitive), a
``Resource`` or ``NotResource`` (``arn:aws:s3:::bucket`` and ``arn:aws:s3:::bucket/key``,
wildcards, case-sensitive) and an optional ``Condition``: ``{operator: {key: values}}``,
every operator and every key of it must hold (AND), any one of a key's values may match
(OR); a negated operator (``StringNotEquals``, ``NotIpAddress``...) holds when none
matches. A key the request does not carry fails a positive operator and satisfies a
negated one; ``...IfExists`` makes a missing key satisfy either; ``Null`` tests presence.

``parse`` refuses what S3 refuses with ``MalformedPolicy``, whose message names the
statement (its index and Sid) and the field at fault. ``Policy.evaluate`` answers
``DENY`` if any matching statement denies, else ``ALLOW`` if any allows, else ``None``;
combining that with ownership and ACLs is ``relay.access.decide``'s job.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, Literal

MAX_POLICY_BYTES: Final = 20 * 1024  # S3's limit on a bucket policy document
VERSIONS: Final = ("2012-10-17", "2008-10-17")
ARN_PREFIX: Final = "arn:aws:s3:::"
ANYONE: Final = "*"

Effect = Literal["Allow", "Deny"]
# A request's condition context: lowercase key -> its value(s), absent when not known.
ContextValue = str | Sequence[str]
ConditionContext = Mapping[str, ContextValue]

# S3's action names (those a policy may name; a pattern must match at least one).
S3_ACTIONS: Final = frozenset(
    f"s3:{name}"
    for name in (
        "AbortMultipartUpload", "CreateBucket", "DeleteBucket", "DeleteBucketPolicy",
        "DeleteBucketOwnershipControls", "DeleteObject", "DeleteObjectTagging",
        "DeleteObjectVersion", "DeleteObjectVersionTagging", "GetBucketAcl", "GetBucketCORS",
        "GetBucketLocation", "GetBucketLogging", "GetBucketNotification",
        "GetBucketObjectLockConfiguration", "GetBucketOwnershipControls", "GetBucketPolicy",
        "GetBucketPolicyStatus", "GetBucketPublicAccessBlock", "GetBucketRequestPayment",
        "GetBucketTagging", "GetBucketVersioning", "GetBucketWebsite",
        "GetAccelerateConfiguration", "GetEncryptionConfiguration",
        "GetLifecycleConfiguration", "GetReplicationConfiguration", "GetObject",
        "GetObjectAcl", "GetObjectAttributes", "GetObjectTagging", "GetObjectVersion",
        "GetObjectVersionAcl", "GetObjectVersionAttributes", "GetObjectVersionTagging",
        "GetObjectRetention", "GetObjectLegalHold", "ListAllMyBuckets", "ListBucket",
        "ListBucketMultipartUploads", "ListBucketVersions", "ListMultipartUploadParts",
        "PutBucketAcl", "PutBucketCORS", "PutBucketLogging", "PutBucketNotification",
        "PutBucketObjectLockConfiguration", "PutBucketOwnershipControls", "PutBucketPolicy",
        "PutBucketPublicAccessBlock", "PutBucketRequestPayment", "PutBucketTagging",
        "PutBucketVersioning", "PutBucketWebsite", "PutAccelerateConfiguration",
        "PutEncryptionConfiguration", "PutLifecycleConfiguration",
        "PutReplicationConfiguration", "PutObject", "PutObjectAcl", "PutObjectTagging",
        "PutObjectVersionAcl", "PutObjectVersionTagging", "PutObjectRetention",
        "PutObjectLegalHold", "RestoreObject",
    )
)  # fmt: skip
_S3_ACTIONS_LOWER: Final = frozenset(action.lower() for action in S3_ACTIONS)

# The S3 condition keys relay knows; global keys (``aws:``) are all accepted, as S3 does.
S3_CONDITION_KEYS: Final = frozenset(
    {
        "s3:prefix", "s3:delimiter", "s3:max-keys", "s3:x-amz-acl", "s3:x-amz-content-sha256",
        "s3:x-amz-copy-source", "s3:x-amz-metadata-directive", "s3:x-amz-storage-class",
        "s3:x-amz-server-side-encryption", "s3:versionid", "s3:signatureversion",
        "s3:authtype", "s3:signatureage", "s3:tlsversion", "s3:x-amz-grant-read",
        "s3:x-amz-grant-write", "s3:x-amz-grant-read-acp", "s3:x-amz-grant-write-acp",
        "s3:x-amz-grant-full-control", "s3:requestobjecttagkeys", "s3:objectownership",
        "s3:resourceaccount",
    }
)  # fmt: skip
_S3_TAG_KEY_PREFIXES: Final = ("s3:existingobjecttag/", "s3:requestobjecttag/")


class MalformedPolicy(ValueError):
    """A policy S3 would refuse (400 MalformedPolicy); the message says where."""


# -- conditions ------------------------------------------------------------------------


def _as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _as_date(value: str) -> datetime | None:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _as_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    return _compiled_glob(pattern, ignore_case)


@lru_cache(maxsize=4096)
def _compiled_glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _string_equals(actual: str, wanted: str) -> bool:
    return actual == wanted


def _string_equals_ignore_case(actual: str, wanted: str) -> bool:
    return actual.casefold() == wanted.casefold()


def _string_like(actual: str, wanted: str) -> bool:
    return _glob(wanted).fullmatch(actual) is not None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def match(actual: str, wanted: str) -> bool:
        a, w = _as_number(actual), _as_number(wanted)
        return a is not None and w is not None and compare(a, w)

    return match


def _date(compare: Callable[[datetime, datetime], bool]) -> Callable[[str, str], bool]:
    def match(actual: str, wanted: str) -> bool:
        a, w = _as_date(actual), _as_date(wanted)
        return a is not None and w is not None and compare(a, w)

    return match


def _bool(actual: str, wanted: str) -> bool:
    return actual.lower() == wanted.lower()


def _ip_address(actual: str, wanted: str) -> bool:
    network = _as_network(wanted)
    try:
        address = ipaddress.ip_address(actual)
    except ValueError:
        return False
    return network is not None and address.version == network.version and address in network


# operator -> (value matcher, negated, value validator for parse)
_OPERATORS: Final[dict[str, tuple[Callable[[str, str], bool], bool, Callable[[str], bool]]]] = {
    "StringEquals": (_string_equals, False, lambda v: True),
    "StringNotEquals": (_string_equals, True, lambda v: True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False, lambda v: True),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True, lambda v: True),
    "StringLike": (_string_like, False, lambda v: True),
    "StringNotLike": (_string_like, True, lambda v: True),
    "NumericEquals": (_numeric(lambda a, w: a == w), False, lambda v: _as_number(v) is not None),
    "NumericNotEquals": (_numeric(lambda a, w: a == w), True, lambda v: _as_number(v) is not None),
    "NumericLessThan": (_numeric(lambda a, w: a < w), False, lambda v: _as_number(v) is not None),
    "NumericLessThanEquals": (
        _numeric(lambda a, w: a <= w), False, lambda v: _as_number(v) is not None,
    ),
    "NumericGreaterThan": (
        _numeric(lambda a, w: a > w), False, lambda v: _as_number(v) is not None,
    ),
    "NumericGreaterThanEquals": (
        _numeric(lambda a, w: a >= w), False, lambda v: _as_number(v) is not None,
    ),
    "DateEquals": (_date(lambda a, w: a == w), False, lambda v: _as_date(v) is not None),
    "DateNotEquals": (_date(lambda a, w: a == w), True, lambda v: _as_date(v) is not None),
    "DateLessThan": (_date(lambda a, w: a < w), False, lambda v: _as_date(v) is not None),
    "DateLessThanEquals": (_date(lambda a, w: a <= w), False, lambda v: _as_date(v) is not None),
    "DateGreaterThan": (_date(lambda a, w: a > w), False, lambda v: _as_date(v) is not None),
    "DateGreaterThanEquals": (
        _date(lambda a, w: a >= w), False, lambda v: _as_date(v) is not None,
    ),
    "Bool": (_bool, False, lambda v: v.lower() in ("true", "false")),
    "IpAddress": (_ip_address, False, lambda v: _as_network(v) is not None),
    "NotIpAddress": (_ip_address, True, lambda v: _as_network(v) is not None),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str  # as written, e.g. "StringLikeIfExists"
    key: str  # lowercase, e.g. "s3:prefix" or "s3:existingobjecttag/Project"
    values: tuple[str, ...]

    @property
    def base_operator(self) -> str:
        return self.operator.removesuffix("IfExists")

    def holds(self, context: ConditionContext) -> bool:
        present = self.key in context
        if self.base_operator == "Null":
            return any((value.lower() == "true") == (not present) for value in self.values)
        if not present:
            if self.operator.endswith("IfExists"):
                return True
            return _OPERATORS[self.base_operator][1]  # negated operators hold
        match, negated, _ = _OPERATORS[self.base_operator]
        raw = context[self.key]
        actuals = [raw] if isinstance(raw, str) else list(raw)
        matched = any(match(actual, wanted) for actual in actuals for wanted in self.values)
        return not matched if negated else matched


def normalize_condition_key(key: str) -> str:
    """Condition keys are case-insensitive; a tag key after ``/`` keeps its case."""
    prefix, slash, rest = key.partition("/")
    return prefix.lower() + slash + rest


# -- statements ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str | None
    effect: Effect
    principals: tuple[str, ...]  # canonical ids or "*"
    principals_negated: bool  # NotPrincipal
    actions: tuple[str, ...]
    actions_negated: bool  # NotAction
    resources: tuple[str, ...]
    resources_negated: bool  # NotResource
    conditions: tuple[Condition, ...]

    def applies_to(self, principal: str | None) -> bool:
        named = ANYONE in self.principals or (
            principal is not None and principal in self.principals
        )
        return not named if self.principals_negated else named

    def covers_action(self, action: str) -> bool:
        hit = any(_glob(p, ignore_case=True).fullmatch(action) for p in self.actions)
        return not hit if self.actions_negated else hit

    def covers_resource(self, resource: str) -> bool:
        hit = any(_glob(p).fullmatch(resource) for p in self.resources)
        return not hit if self.resources_negated else hit

    def matches(
        self, principal: str | None, action: str, resource: str, context: ConditionContext
    ) -> bool:
        return (
            self.applies_to(principal)
            and self.covers_action(action)
            and self.covers_resource(resource)
            and all(condition.holds(context) for condition in self.conditions)
        )

    def is_public(self) -> bool:
        """Grants to everyone (S3's "public" test): an Allow to ``*`` (or through
        NotPrincipal) not pinned by a condition on a fixed value (a narrow source IP
        range, a source account / ARN / VPC / organization)."""
        if self.effect != "Allow":
            return False
        if not self.principals_negated and ANYONE not in self.principals:
            return False
        return not any(_pins_requester(condition) for condition in self.conditions)


_FIXED_VALUE_KEYS: Final = frozenset(
    {
        "aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceaccount",
        "aws:sourceowner", "aws:principalaccount", "aws:principalarn", "aws:principalorgid",
        "aws:userid", "s3:resourceaccount",
    }
)  # fmt: skip


def _pins_requester(condition: Condition) -> bool:
    if condition.key == "aws:sourceip" and condition.base_operator == "IpAddress":
        networks = [_as_network(value) for value in condition.values]
        return all(n is not None and n.prefixlen >= (8 if n.version == 4 else 32) for n in networks)
    return (
        condition.key in _FIXED_VALUE_KEYS
        and condition.base_operator in ("StringEquals", "StringEqualsIgnoreCase")
        and not condition.operator.endswith("IfExists")
    )


Decision = Literal["Allow", "Deny"]


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]

    def evaluate(
        self, principal: str | None, action: str, resource: str, context: ConditionContext
    ) -> Decision | None:
        """``Deny`` if any matching statement denies, else ``Allow`` if any allows, else
        None (the policy says nothing of this request). ``principal`` None is anonymous."""
        verdict: Decision | None = None
        for statement in self.statements:
            if statement.matches(principal, action, resource, context):
                if statement.effect == "Deny":
                    return "Deny"
                verdict = "Allow"
        return verdict

    def is_public(self) -> bool:
        return any(statement.is_public() for statement in self.statements)

    def allows_publicly(
        self, principal: str | None, action: str, resource: str, context: ConditionContext
    ) -> bool:
        """Whether a public statement is what allows this request (RestrictPublicBuckets
        sets exactly those aside)."""
        return any(
            s.is_public() and s.matches(principal, action, resource, context)
            for s in self.statements
        )

    def without_public_statements(self) -> Policy:
        return Policy(tuple(s for s in self.statements if not s.is_public()))

    def mentions_condition_key(self, prefix: str) -> bool:
        return any(c.key.startswith(prefix) for s in self.statements for c in s.conditions)


# -- parsing ---------------------------------------------------------------------------


class _Where:
    """Names the statement being parsed in an error message."""

    def __init__(self, index: int, sid: object) -> None:
        self.label = f"statement {index + 1}" + (f" (Sid {sid!r})" if isinstance(sid, str) else "")

    def fail(self, problem: str, field: str, value: object = None) -> MalformedPolicy:
        shown = "" if value is None else f": {json.dumps(value)[:120]}"
        return MalformedPolicy(f"{problem} in {self.label}, field {field}{shown}")


def _strings(value: object, where: _Where, field: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise where.fail("Expected a string or a non-empty list of strings", field, value)
    return tuple(items)


def _principal_id(value: str) -> str:
    if value == ANYONE:
        return ANYONE
    match = re.fullmatch(r"arn:aws:iam::([^:]+):(?:root|user/.+)", value)
    return match.group(1) if match else value


def _principals(
    value: object, where: _Where, field: str, known: Iterable[str] | None
) -> tuple[str, ...]:
    if value == ANYONE:
        return (ANYONE,)
    if not isinstance(value, dict) or not value:
        raise where.fail("Invalid principal in policy", field, value)
    found: list[str] = []
    for kind, names in value.items():
        if kind not in ("AWS", "CanonicalUser"):
            raise where.fail(f"Invalid principal in policy (relay has no {kind} principals)", field)
        found.extend(_principal_id(name) for name in _strings(names, where, field))
    if known is not None:
        allowed = set(known)
        for name in found:
            if name != ANYONE and name not in allowed:
                raise where.fail("Invalid principal in policy", field, name)
    return tuple(found)


def _actions(value: object, where: _Where, field: str) -> tuple[str, ...]:
    actions = _strings(value, where, field)
    for action in actions:
        if action == "*" or action.lower() == "s3:*":
            continue
        pattern = _glob(action, ignore_case=True)
        if not any(pattern.fullmatch(known) for known in _S3_ACTIONS_LOWER):
            raise where.fail("Policy has invalid action", field, action)
    return actions


def _resources(value: object, where: _Where, field: str, bucket: str) -> tuple[str, ...]:
    resources = _strings(value, where, field)
    for resource in resources:
        if resource == "*":
            continue
        if not resource.startswith(ARN_PREFIX):
            raise where.fail("Policy has invalid resource", field, resource)
        bucket_pattern = resource[len(ARN_PREFIX) :].partition("/")[0]
        if not _glob(bucket_pattern).fullmatch(bucket):
            raise where.fail(
                f"Policy has invalid resource (not in bucket {bucket!r})", field, resource
            )
    return resources


def _condition_values(value: object, where: _Where) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise where.fail("Empty condition values", "Condition")
    result = []
    for item in items:
        if isinstance(item, bool):
            result.append("true" if item else "false")
        elif isinstance(item, (str, int, float)):
            result.append(str(item))
        else:
            raise where.fail("Invalid condition value", "Condition", item)
    return tuple(result)


def _conditions(value: object, where: _Where) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise where.fail("Condition must be an object", "Condition", value)
    conditions = []
    for operator, keys in value.items():
        base = operator.removesuffix("IfExists")
        if base not in _OPERATORS and base != "Null":
            raise where.fail("Invalid Condition type", "Condition", operator)
        if not isinstance(keys, dict) or not keys:
            raise where.fail("Condition operator needs an object of keys", "Condition", operator)
        for key, raw_values in keys.items():
            if not isinstance(key, str):
                raise where.fail("Policy has an invalid condition key", "Condition", key)
            normalized = normalize_condition_key(key)
            if not (
                normalized.startswith("aws:")
                or normalized in S3_CONDITION_KEYS
                or (normalized.startswith(_S3_TAG_KEY_PREFIXES) and "/" in normalized)
            ):
                raise where.fail("Policy has an invalid condition key", "Condition", key)
            values = _condition_values(raw_values, where)
            validate = (
                (lambda v: v.lower() in ("true", "false"))
                if base == "Null"
                else (_OPERATORS[base][2])
            )
            for item in values:
                if not validate(item):
                    raise where.fail(f"Invalid value for {operator}", "Condition", item)
            conditions.append(Condition(operator, normalized, values))
    return tuple(conditions)


_STATEMENT_FIELDS: Final = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
     "NotResource", "Condition"}
)  # fmt: skip


def _one_of(raw: dict[str, object], plain: str, negated: str, where: _Where) -> tuple[str, bool]:
    if plain in raw and negated in raw:
        raise where.fail(f"Only one of {plain} and {negated} is allowed", plain)
    if plain not in raw and negated not in raw:
        raise where.fail(f"Missing required field {plain}", plain)
    return (negated, True) if negated in raw else (plain, False)


def _statement(index: int, raw: object, bucket: str, known: Iterable[str] | None) -> Statement:
    if not isinstance(raw, dict):
        raise MalformedPolicy(f"statement {index + 1} must be an object")
    where = _Where(index, raw.get("Sid"))
    unknown = set(raw) - _STATEMENT_FIELDS
    if unknown:
        raise where.fail("Unknown field", sorted(unknown)[0])
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise where.fail("Sid must be a string", "Sid", sid)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise where.fail("Invalid effect (Allow or Deny)", "Effect", effect)
    principal_field, principals_negated = _one_of(raw, "Principal", "NotPrincipal", where)
    action_field, actions_negated = _one_of(raw, "Action", "NotAction", where)
    resource_field, resources_negated = _one_of(raw, "Resource", "NotResource", where)
    return Statement(
        sid=sid,
        effect=effect,
        principals=_principals(raw[principal_field], where, principal_field, known),
        principals_negated=principals_negated,
        actions=_actions(raw[action_field], where, action_field),
        actions_negated=actions_negated,
        resources=_resources(raw[resource_field], where, resource_field, bucket),
        resources_negated=resources_negated,
        conditions=_conditions(raw.get("Condition", {}), where),
    )


def parse(document: bytes, bucket: str, *, known_principals: Iterable[str] | None = None) -> Policy:
    """A bucket policy for ``bucket``, or ``MalformedPolicy`` saying what is wrong where.

    ``known_principals``: the canonical ids a policy may name (relay's keys); None
    accepts any."""
    if len(document) > MAX_POLICY_BYTES:
        raise MalformedPolicy("Policy exceeds the maximum allowed document size.")
    try:
        raw = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPolicy(f"Policies must be valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedPolicy("Policies must be valid JSON and the first byte must be '{'")
    unknown = set(raw) - {"Version", "Id", "Statement"}
    if unknown:
        raise MalformedPolicy(f"Unknown field {sorted(unknown)[0]} in the policy")
    version = raw.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicy(f"The policy must contain a valid version string, not {version!r}")
    statements = raw.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicy("Missing required field Statement")
    known = None if known_principals is None else tuple(known_principals)
    parsed = tuple(_statement(i, s, bucket, known) for i, s in enumerate(statements))
    sids = [s.sid for s in parsed if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicy("Statement IDs (SID) in a single policy must be unique")
    return Policy(parsed)
