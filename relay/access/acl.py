"""Access control lists: S3's grants, canned ACLs, the grant headers and the XML document.

An ACL is a tuple of grants ``(grantee, permission)``. A grantee is a canonical user id
(relay's: an access key id) or one of the two group URIs S3 defines that relay can honour:
``AllUsers`` (anyone, signed or not) and ``AuthenticatedUsers`` (any of relay's keys).
Permissions are S3's five. An ACL never names an owner: a bucket's owner is its creator
and an object's owner is its bucket's owner (relay records no per-object writer; see the
README, "Object ownership"), so the owner's FULL_CONTROL grant is only what
``canned(..., owner)`` writes into the list, as S3 does.

What each permission allows (S3's table): on a bucket READ lists it, WRITE creates and
deletes its objects, READ_ACP / WRITE_ACP read and write the bucket's ACL; on an object
READ reads it (GET, HEAD), READ_ACP / WRITE_ACP its ACL; FULL_CONTROL is all four.
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Final
from xml.sax.saxutils import escape

ALL_USERS: Final = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS: Final = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
GROUPS: Final = (ALL_USERS, AUTHENTICATED_USERS)
PERMISSIONS: Final = ("FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP")
GRANT_HEADERS: Final = {
    "x-amz-grant-full-control": "FULL_CONTROL",
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
}
# Canned ACLs S3 defines that name a grantee relay has no counterpart for.
UNSUPPORTED_CANNED: Final = frozenset({"aws-exec-read", "log-delivery-write"})
CANNED: Final = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }
)

Grant = tuple[str, str]  # (grantee, permission)

# Which permission grants each action, on the bucket's ACL or on the object's.
BUCKET_ACL_ACTIONS: Final = {
    "s3:ListBucket": "READ",
    "s3:ListBucketVersions": "READ",
    "s3:ListBucketMultipartUploads": "READ",
    "s3:PutObject": "WRITE",
    "s3:DeleteObject": "WRITE",
    "s3:AbortMultipartUpload": "WRITE",
    "s3:ListMultipartUploadParts": "WRITE",
    "s3:GetBucketAcl": "READ_ACP",
    "s3:PutBucketAcl": "WRITE_ACP",
}
OBJECT_ACL_ACTIONS: Final = {
    "s3:GetObject": "READ",
    "s3:GetObjectAcl": "READ_ACP",
    "s3:PutObjectAcl": "WRITE_ACP",
}


class AclError(ValueError):
    """An ACL S3 would refuse; ``code`` is the S3 error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def canned(name: str, owner: str) -> tuple[Grant, ...]:
    """The grants a canned ACL stands for. Object writers are their bucket's owner in
    relay, so the bucket-owner-* ACLs come to the owner's FULL_CONTROL."""
    if name in UNSUPPORTED_CANNED:
        raise AclError("NotImplemented", f"relay has no grantee for the canned ACL {name!r}")
    if name not in CANNED:
        raise AclError("InvalidArgument", f"The canned ACL {name[:64]!r} is not valid")
    grants: list[Grant] = [(owner, "FULL_CONTROL")]
    if name in ("public-read", "public-read-write"):
        grants.append((ALL_USERS, "READ"))
    if name == "public-read-write":
        grants.append((ALL_USERS, "WRITE"))
    if name == "authenticated-read":
        grants.append((AUTHENTICATED_USERS, "READ"))
    return tuple(grants)


_GRANTEE: Final = re.compile(r'\s*(id|uri|emailAddress)\s*=\s*"?([^",]*)"?\s*(?:,|$)')


def _grantee(kind: str, value: str, known: Iterable[str] | None) -> str:
    if kind == "emailAddress":
        raise AclError(
            "UnresolvableGrantByEmailAddress",
            "The e-mail address you provided does not match any account on record.",
        )
    if kind == "uri":
        if value not in GROUPS:
            raise AclError("InvalidArgument", f"Invalid group uri {value[:120]!r}")
        return value
    if known is not None and value not in set(known):
        raise AclError("InvalidArgument", f"Invalid id {value[:64]!r}")
    return value


def grants_from_headers(
    headers: Mapping[str, str], known: Iterable[str] | None = None
) -> tuple[Grant, ...] | None:
    """The grants ``x-amz-grant-*`` headers give (``id="..."``, ``uri="..."``), or None
    when there are none."""
    present = [name for name in GRANT_HEADERS if name in headers]
    if not present:
        return None
    grants: list[Grant] = []
    for name in present:
        value = headers[name].strip()
        position = 0
        while position < len(value):
            match = _GRANTEE.match(value, position)
            if match is None or match.end() == position:
                raise AclError("InvalidArgument", f"Invalid {name} header value")
            grant = (_grantee(match.group(1), match.group(2), known), GRANT_HEADERS[name])
            if grant not in grants:
                grants.append(grant)
            position = match.end()
    return tuple(grants)


def check_exclusive(headers: Mapping[str, str]) -> None:
    """A canned ACL and explicit grants in one request is 400, as on S3."""
    if "x-amz-acl" in headers and any(name in headers for name in GRANT_HEADERS):
        raise AclError(
            "InvalidRequest",
            "Specifying both Canned ACLs and Header Grants is not allowed",
        )


def is_public(grants: Iterable[Grant]) -> bool:
    return any(grantee in GROUPS for grantee, _ in grants)


def private_grants(grants: Iterable[Grant]) -> tuple[Grant, ...]:
    """The grants without those to everyone (IgnorePublicAcls)."""
    return tuple(grant for grant in grants if grant[0] not in GROUPS)


def grants_allow(grants: Iterable[Grant], principal: str | None, permission: str) -> bool:
    """Whether ``grants`` give ``principal`` (None: anonymous) ``permission``."""
    for grantee, granted in grants:
        if granted != permission and granted != "FULL_CONTROL":
            continue
        if grantee == ALL_USERS:
            return True
        if principal is not None and grantee in (AUTHENTICATED_USERS, principal):
            return True
    return False


# -- stored form -----------------------------------------------------------------------


def encode(grants: Iterable[Grant]) -> bytes:
    return json.dumps([list(grant) for grant in grants], separators=(",", ":")).encode()


def decode(data: bytes) -> tuple[Grant, ...]:
    raw = json.loads(data)
    return tuple((str(grantee), str(permission)) for grantee, permission in raw)


# -- the AccessControlPolicy document ----------------------------------------------------

_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_NS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(node: ET.Element, name: str) -> str | None:
    for child in node:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def parse_document(body: bytes, known: Iterable[str] | None = None) -> tuple[Grant, ...]:
    """The grants of an AccessControlPolicy document (PutBucketAcl / PutObjectAcl)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise AclError("MalformedACLError", "The XML you provided was not well-formed") from None
    if _local(root.tag) != "AccessControlPolicy":
        raise AclError("MalformedACLError", "The XML you provided was not well-formed")
    grants: list[Grant] = []
    lists = [child for child in root if _local(child.tag) == "AccessControlList"]
    if len(lists) != 1:
        raise AclError("MalformedACLError", "The ACL needs one AccessControlList")
    for grant in lists[0]:
        if _local(grant.tag) != "Grant":
            raise AclError("MalformedACLError", f"Unexpected element {_local(grant.tag)}")
        grantee = next((c for c in grant if _local(c.tag) == "Grantee"), None)
        permission = _child_text(grant, "Permission")
        if grantee is None or permission not in PERMISSIONS:
            raise AclError("MalformedACLError", "Each Grant needs a Grantee and a Permission")
        kind = grantee.get(f"{{{_XSI}}}type", "")
        if kind == "CanonicalUser":
            value = _grantee("id", _child_text(grantee, "ID") or "", known)
        elif kind == "Group":
            value = _grantee("uri", _child_text(grantee, "URI") or "", known)
        elif kind == "AmazonCustomerByEmail":
            value = _grantee("emailAddress", "", known)
        else:
            raise AclError("MalformedACLError", f"Unknown grantee type {kind[:40]!r}")
        if (value, permission) not in grants:
            grants.append((value, permission))
    if not grants:
        # S3 would store an ACL granting nothing, locking out all but the owner; relay
        # refuses it so the request does not silently change less than asked.
        raise AclError("MalformedACLError", "The AccessControlList must hold at least one Grant")
    return tuple(grants)


def render_document(owner: str, grants: Iterable[Grant]) -> bytes:
    """GetBucketAcl / GetObjectAcl's answer."""
    entries = []
    for grantee, permission in grants:
        if grantee in GROUPS:
            who = f'<Grantee xmlns:xsi="{_XSI}" xsi:type="Group"><URI>{escape(grantee)}</URI>'
        else:
            who = (
                f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser"><ID>{escape(grantee)}</ID>'
                f"<DisplayName>{escape(grantee)}</DisplayName>"
            )
        entries.append(f"<Grant>{who}</Grantee><Permission>{permission}</Permission></Grant>")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="{_NS}">'
        f"<Owner><ID>{escape(owner)}</ID><DisplayName>{escape(owner)}</DisplayName></Owner>"
        f"<AccessControlList>{''.join(entries)}</AccessControlList></AccessControlPolicy>"
    )
    return body.encode()
