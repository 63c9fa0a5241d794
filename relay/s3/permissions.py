"""What ``relay.s3.access`` and the operation handlers share about access: the names
bucket settings are stored under, a request's condition context, a decision for one more
key (DeleteObjects), and the ACL a write asks for (``x-amz-acl``, ``x-amz-grant-*``),
held to the bucket's ownership controls and public access block, as the write stores it.

The bucket's settings are those ``relay.s3.access.authorize`` read for this request
(``ctx.bucket_access``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final

from relay.access import acl
from relay.access.decide import decide, object_arn
from relay.s3 import errors as e
from relay.s3.context import Context

POLICY: Final = "policy"
ACL: Final = "acl"
PUBLIC_ACCESS_BLOCK: Final = "publicAccessBlock"
OWNERSHIP: Final = "ownershipControls"


def condition_context(ctx: Context, now: float) -> dict[str, str]:
    """The condition keys this request carries (lowercase), for a policy's Condition."""
    headers, query = ctx.headers, ctx.query
    context = {
        "aws:securetransport": "false",  # relay serves plain HTTP; TLS ends in front of it
        "aws:currenttime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:epochtime": str(int(now)),
        "aws:principaltype": "Anonymous" if ctx.anonymous else "Account",
    }
    if ctx.request.client is not None:
        context["aws:sourceip"] = ctx.request.client[0]
    if not ctx.anonymous:
        context["aws:username"] = context["aws:userid"] = ctx.auth.access_key
        context["s3:authtype"] = "REST-QUERY-STRING" if ctx.auth.presigned else "REST-HEADER"
        context["s3:signatureversion"] = "AWS4-HMAC-SHA256"
    for header, key in (("user-agent", "aws:useragent"), ("referer", "aws:referer")):
        if header in headers:
            context[key] = headers[header]
    for name in ("prefix", "delimiter", "max-keys"):
        if name in query:
            context[f"s3:{name}"] = query[name]
    for name in (
        "x-amz-acl", "x-amz-content-sha256", "x-amz-copy-source", "x-amz-metadata-directive",
        "x-amz-storage-class", "x-amz-server-side-encryption", *acl.GRANT_HEADERS,
    ):  # fmt: skip
        if name in headers:
            context[f"s3:{name}"] = headers[name]
    return context


def allows(ctx: Context, action: str, bucket: str, key: str) -> bool:
    """An object action decided from the bucket's settings alone (DeleteObjects' keys)."""
    access = ctx.bucket_access
    if access is None:
        return not ctx.anonymous
    principal = None if ctx.anonymous else ctx.auth.access_key
    return decide(
        access, principal, action, object_arn(bucket, key), condition_context(ctx, time.time())
    )


def acl_error(error: acl.AclError) -> e.S3Error:
    error_class = e.BY_CODE.get(error.code, e.InvalidArgument)
    return error_class(error.message)


def requested_grants(ctx: Context, owner: str) -> tuple[acl.Grant, ...] | None:
    """The ACL a write asks for (``x-amz-acl`` or ``x-amz-grant-*``), held to the bucket's
    ownership controls and public access block; None when there is none."""
    headers = ctx.headers
    try:
        acl.check_exclusive(headers)
        canned = headers.get("x-amz-acl")
        if canned is not None:
            grants: tuple[acl.Grant, ...] | None = acl.canned(canned.strip(), owner)
        else:
            grants = acl.grants_from_headers(headers, ctx.known_principals)
    except acl.AclError as error:
        raise acl_error(error) from None
    if grants is None:
        return None
    return held_to_settings(ctx, grants, owner, canned_name=canned)


def held_to_settings(
    ctx: Context, grants: tuple[acl.Grant, ...], owner: str, *, canned_name: str | None
) -> tuple[acl.Grant, ...]:
    access = ctx.bucket_access
    if access is not None and not access.acls_enabled:
        private = grants == ((owner, "FULL_CONTROL"),)
        if not (private and canned_name in (None, "bucket-owner-full-control")):
            raise e.AccessControlListNotSupported()
    if access is not None and access.public_access_block.block_public_acls:
        if acl.is_public(grants):
            raise e.AccessDenied("public ACLs are blocked by the bucket's public access block")
    return grants


def stored_grants(grants: tuple[acl.Grant, ...] | None, owner: str) -> tuple[acl.Grant, ...] | None:
    """None for the default (the owner's FULL_CONTROL alone): nothing to store."""
    if grants is None or grants == ((owner, "FULL_CONTROL"),):
        return None
    return grants


def object_grants_for_write(ctx: Context) -> tuple[acl.Grant, ...] | None:
    """What a new object's manifest records of the ACL its write asked for."""
    owner = ctx.bucket_access.owner if ctx.bucket_access is not None else ctx.owner
    return stored_grants(requested_grants(ctx, owner), owner)


def check_acl_headers(ctx: Context) -> None:
    """Refuse a bad ACL before a body is read (the grants are computed again at write)."""
    owner = ctx.bucket_access.owner if ctx.bucket_access is not None else ctx.owner
    requested_grants(ctx, owner)
