"""The POST policy of a browser form upload: its signature, expiry and conditions. Pure.

Theory of operation. A presigned POST is an HTML form whose ``policy`` field is a base64
JSON document (``expiration``, ``conditions``) signed with the uploader's secret, either
SigV4 (``x-amz-algorithm``, ``x-amz-credential``, ``x-amz-date``, ``x-amz-signature`` =
hex HMAC-SHA256 of the base64 policy under the scope's signing key) or SigV2
(``AWSAccessKeyId``, ``signature`` = base64 HMAC-SHA1 of the base64 policy under the
secret). The server checks, in this order: the signature (``verify_signature``), the
expiry, then that every condition holds for the form's fields and that every field is
covered by a condition (``check_fields``), as S3 does. The body's length is checked
against ``content-length-range`` while it streams (too large) and at its end (too small).

Field names are compared case-insensitively (they are kept lowercase); ``bucket`` is the
request's bucket; a field the form lacks is the empty string. Conditions are ``{"name":
"value"}`` or ``["eq", "$name", "value"]`` (exact), ``["starts-with", "$name", "prefix"]``
(for Content-Type each comma-separated type must start so), and
``["content-length-range", min, max]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from relay.s3.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidPolicyDocument,
    S3Error,
    SignatureDoesNotMatch,
)
from relay.sigv4 import UNSIGNED_PAYLOAD, VerifiedRequest
from relay.sigv4 import canonical as c
from relay.sigv4 import v2 as sigv2

# Form fields no condition needs to cover (S3's list, and SigV2's key id).
UNCOVERED_FIELDS: Final = frozenset({"x-amz-signature", "signature", "file", "policy"})
UNCOVERED_PREFIX: Final = "x-ignore-"
SIGV2_KEY_FIELD: Final = "awsaccesskeyid"
_V4_FIELDS: Final = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")

SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str  # "eq" or "starts-with"
    field: str  # lowercase, without "$"
    value: str
    text: str  # as S3 quotes it in an error: ["eq", "$key", "a"]

    def holds(self, fields: Mapping[str, str]) -> bool:
        given = fields.get(self.field, "")
        if self.operator == "eq":
            return given == self.value
        if self.field == "content-type" and "," in given:
            return all(part.strip().startswith(self.value) for part in given.split(","))
        return given.startswith(self.value)


@dataclass(frozen=True, slots=True)
class Policy:
    expiration: float  # epoch seconds
    conditions: tuple[Condition, ...]
    content_length_range: tuple[int, int] | None


def _invalid(reason: str) -> S3Error:
    return InvalidPolicyDocument(f"Invalid Policy: {reason}")


def decode(policy_b64: str) -> Policy:
    """The policy document of a form's ``policy`` field, or InvalidPolicyDocument."""
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError):
        raise _invalid("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise _invalid("Invalid JSON.")
    expiration = document.get("expiration")
    if expiration is None:
        raise _invalid("Policy missing expiration.")
    if not isinstance(expiration, str):
        raise _invalid("Invalid 'expiration' value: must be an ISO 8601 date.")
    try:
        when = datetime.fromisoformat(expiration)
    except ValueError:
        raise _invalid(f"Invalid 'expiration' value: '{expiration}'") from None
    if when.tzinfo is None:
        raise _invalid(f"Invalid 'expiration' value: '{expiration}'")
    raw_conditions = document.get("conditions")
    if raw_conditions is None:
        raise _invalid("Policy missing conditions.")
    if not isinstance(raw_conditions, list):
        raise _invalid("Invalid 'conditions' value: must be a List.")
    conditions: list[Condition] = []
    length_range = None
    for raw in raw_conditions:
        if isinstance(raw, list) and raw and str(raw[0]).lower() == "content-length-range":
            length_range = _length_range(raw)
        else:
            conditions.extend(_conditions(raw))
    return Policy(when.timestamp(), tuple(conditions), length_range)


def _length_range(raw: list[Any]) -> tuple[int, int]:
    try:
        low, high = (int(value) for value in raw[1:])
    except (TypeError, ValueError):
        raise _invalid(f"Invalid Condition: {json.dumps(raw)}") from None
    if low < 0 or high < low:
        raise _invalid(f"Invalid Condition: {json.dumps(raw)}")
    return low, high


def _conditions(raw: Any) -> list[Condition]:
    if isinstance(raw, dict):
        if len(raw) != 1:
            raise _invalid("Invalid Condition: an exact-match object names one field.")
        ((name, value),) = raw.items()
        if not isinstance(value, str):
            raise _invalid(f"Invalid Condition: {json.dumps(raw)}")
        field = str(name).lower().removeprefix("$")
        return [Condition("eq", field, value, json.dumps(["eq", f"${name}", value]))]
    if isinstance(raw, list) and len(raw) == 3 and all(isinstance(part, str) for part in raw):
        operator, name, value = raw
        operator = operator.lower()
        if operator in ("eq", "starts-with") and name.startswith("$"):
            return [Condition(operator, name[1:].lower(), value, json.dumps(raw))]
    raise _invalid(f"Invalid Condition: {json.dumps(raw)}")


def check_expiry(policy: Policy, now: float) -> None:
    if now > policy.expiration:
        raise AccessDenied("Invalid according to Policy: Policy expired.")


def check_fields(policy: Policy, fields: Mapping[str, str]) -> None:
    """Every condition holds for ``fields`` (lowercase names, with ``bucket``), and every
    field a form sent is covered by a condition."""
    for condition in policy.conditions:
        if not condition.holds(fields):
            raise AccessDenied(
                f"Invalid according to Policy: Policy Condition failed: {condition.text}"
            )
    covered = {condition.field for condition in policy.conditions} | {"bucket"}
    extra = [
        name
        for name in fields
        if name not in covered
        and name not in UNCOVERED_FIELDS
        and name != SIGV2_KEY_FIELD
        and not name.startswith(UNCOVERED_PREFIX)
    ]
    if extra:
        raise AccessDenied(
            "Invalid according to Policy: Extra input fields: " + ", ".join(sorted(extra))
        )


def verify_signature(
    fields: Mapping[str, str], lookup_secret: SecretLookup, *, region: str
) -> VerifiedRequest:
    """Who signed the form's policy (SigV4 or SigV2), or the error S3 answers with."""
    policy_b64 = fields["policy"]
    if "x-amz-signature" in fields or "x-amz-credential" in fields:
        return _verify_v4(fields, policy_b64, lookup_secret, region)
    if SIGV2_KEY_FIELD in fields and "signature" in fields:
        return _verify_v2(fields, policy_b64, lookup_secret, region)
    raise InvalidArgument(
        "Bucket POST must contain a field named 'x-amz-signature' (or 'AWSAccessKeyId' and"
        " 'signature'). If it is specified, please check the order of the fields."
    )


def _verify_v4(
    fields: Mapping[str, str], policy_b64: str, lookup_secret: SecretLookup, region: str
) -> VerifiedRequest:
    missing = [name for name in _V4_FIELDS if name not in fields]
    if missing:
        raise InvalidArgument(f"Bucket POST must contain a field named '{missing[0]}'.")
    if fields["x-amz-algorithm"] != c.ALGORITHM:
        raise InvalidArgument(f"x-amz-algorithm must be {c.ALGORITHM}")
    parts = fields["x-amz-credential"].split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise InvalidArgument("Invalid x-amz-credential: access-key/date/region/s3/aws4_request")
    access_key, date, credential_region = parts[0], parts[1], parts[2]
    timestamp = fields["x-amz-date"]
    if timestamp[:8] != date:
        raise InvalidArgument("The x-amz-date does not match the date of the x-amz-credential")
    if credential_region != region:
        raise InvalidArgument(
            f"the credential names region '{credential_region}'; this server is '{region}'"
        )
    secret = lookup_secret(access_key)
    if secret is None:
        raise InvalidAccessKeyId()
    key = c.signing_key(secret, date, region, "s3")
    expected = hmac.new(key, policy_b64.encode("utf-8"), hashlib.sha256).hexdigest()
    if not c.signatures_equal(expected, fields["x-amz-signature"].lower()):
        raise SignatureDoesNotMatch()
    return VerifiedRequest(
        access_key=access_key,
        payload=UNSIGNED_PAYLOAD,
        seed_signature=expected,
        signing_key=key,
        scope=c.credential_scope(date, region, "s3"),
        timestamp=timestamp,
        region=region,
        presigned=True,
        decoded_content_length=None,
    )


def _verify_v2(
    fields: Mapping[str, str], policy_b64: str, lookup_secret: SecretLookup, region: str
) -> VerifiedRequest:
    access_key = fields[SIGV2_KEY_FIELD]
    secret = lookup_secret(access_key)
    if secret is None:
        raise InvalidAccessKeyId()
    expected = sigv2.signature(secret, policy_b64)  # base64 HMAC-SHA1 of the base64 policy
    if not sigv2.signatures_equal(expected, fields["signature"].strip()):
        raise SignatureDoesNotMatch()
    return VerifiedRequest(
        access_key=access_key,
        payload=UNSIGNED_PAYLOAD,
        seed_signature=expected,
        signing_key=b"",
        scope="",
        timestamp="",
        region=region,
        presigned=True,
        decoded_content_length=None,
    )
