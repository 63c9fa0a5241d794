"""Where the S3 layer decides access, and the operations on a bucket's access settings.

``authorize`` runs once for every request, after authentication and before its handler
(``relay.s3.app``): it names the request's action (S3's, ``s3:GetObject``...) and
resource (the bucket's or the object's ARN), gathers the bucket's access settings from
the registry (one read of ``bucket_settings``), the condition context, and for an object
read by someone other than the owner the object's ACL from its manifest, and asks the pure
core (``relay.access.decide``). Allowed, it records the bucket in ``ctx.authorized`` so
``owned_bucket`` lets the handler through; refused, it raises AccessDenied. An endpoint
with no action here (a bucket configuration relay holds, ListBuckets) stays its owner's.

Settings are stored per bucket under these names: ``policy`` (the JSON as put),
``acl`` (``relay.access.acl.encode``), ``publicAccessBlock`` (JSON of the four flags),
``ownershipControls`` (the rule's name). The engine keeps them at most a second
(``BUCKET_SETTINGS_TTL_SECONDS``) and forgets its copy when it writes one, so a change
through this process applies to the next request and one through another process serving
the same registry within that second.
"""

from __future__ import annotations

import dataclasses
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from relay.access import acl
from relay.access.decide import (
    DEFAULT_OWNERSHIP,
    OWNERSHIP_CHOICES,
    BucketAccess,
    PublicAccessBlock,
    bucket_arn,
    decide,
    object_arn,
)
from relay.access.policy import MalformedPolicy as PolicyProblem
from relay.access.policy import Policy, parse
from relay.bucket import Manifest, NoSuchKey
from relay.http import Response
from relay.s3 import errors as e
from relay.s3 import routing
from relay.s3.buckets import owned_bucket
from relay.s3.context import Context, check_body_digests, drain, empty_response, xml_response
from relay.s3.payload import Payload
from relay.s3.permissions import (
    ACL,
    OWNERSHIP,
    POLICY,
    PUBLIC_ACCESS_BLOCK,
    acl_error,
    condition_context,
    held_to_settings,
    requested_grants,
    stored_grants,
)
from relay.s3.tagging import check_version
from relay.s3.xml import document, element

MAX_SETTING_BODY_BYTES: Final = 64 << 10

# The action each operation is, in S3's names (what a policy's Action matches).
ACTIONS: Final[dict[type[routing.Endpoint], str]] = {
    routing.HeadBucket: "s3:ListBucket",
    routing.DeleteBucket: "s3:DeleteBucket",
    routing.GetBucketLocation: "s3:GetBucketLocation",
    routing.ListObjects: "s3:ListBucket",
    routing.ListObjectsV2: "s3:ListBucket",
    routing.ListObjectVersions: "s3:ListBucketVersions",
    routing.ListMultipartUploads: "s3:ListBucketMultipartUploads",
    routing.PutObject: "s3:PutObject",
    routing.GetObject: "s3:GetObject",
    routing.HeadObject: "s3:GetObject",
    routing.DeleteObject: "s3:DeleteObject",
    routing.CreateMultipartUpload: "s3:PutObject",
    routing.UploadPart: "s3:PutObject",
    routing.CompleteMultipartUpload: "s3:PutObject",
    routing.AbortMultipartUpload: "s3:AbortMultipartUpload",
    routing.ListParts: "s3:ListMultipartUploadParts",
    routing.CopyObject: "s3:PutObject",
    routing.UploadPartCopy: "s3:PutObject",
    routing.GetObjectAttributes: "s3:GetObjectAttributes",
    routing.GetObjectTagging: "s3:GetObjectTagging",
    routing.PutObjectTagging: "s3:PutObjectTagging",
    routing.DeleteObjectTagging: "s3:DeleteObjectTagging",
    routing.GetObjectAcl: "s3:GetObjectAcl",
    routing.PutObjectAcl: "s3:PutObjectAcl",
    routing.GetBucketAcl: "s3:GetBucketAcl",
    routing.PutBucketAcl: "s3:PutBucketAcl",
    routing.GetBucketVersioning: "s3:GetBucketVersioning",
    routing.PutBucketVersioning: "s3:PutBucketVersioning",
}
_SETTING_ACTIONS: Final = {
    ("policy", "GET"): "s3:GetBucketPolicy",
    ("policy", "PUT"): "s3:PutBucketPolicy",
    ("policy", "DELETE"): "s3:DeleteBucketPolicy",
    ("policyStatus", "GET"): "s3:GetBucketPolicyStatus",
    ("publicAccessBlock", "GET"): "s3:GetBucketPublicAccessBlock",
    ("publicAccessBlock", "PUT"): "s3:PutBucketPublicAccessBlock",
    ("publicAccessBlock", "DELETE"): "s3:PutBucketPublicAccessBlock",
    ("ownershipControls", "GET"): "s3:GetBucketOwnershipControls",
    ("ownershipControls", "PUT"): "s3:PutBucketOwnershipControls",
    ("ownershipControls", "DELETE"): "s3:PutBucketOwnershipControls",
}


def action_of(endpoint: routing.Endpoint) -> str | None:
    if isinstance(endpoint, routing.AccessSetting):
        return _SETTING_ACTIONS[(endpoint.setting, endpoint.method)]
    return ACTIONS.get(type(endpoint))


@lru_cache(maxsize=256)
def _parsed_policy(document_bytes: bytes, bucket: str) -> Policy:
    return parse(document_bytes, bucket)  # checked when it was put; parsed once per text


def bucket_access(owner: str, settings: Mapping[str, bytes], bucket: str) -> BucketAccess:
    block = PublicAccessBlock()
    if PUBLIC_ACCESS_BLOCK in settings:
        block = PublicAccessBlock(**json.loads(settings[PUBLIC_ACCESS_BLOCK]))
    return BucketAccess(
        owner=owner,
        policy=_parsed_policy(settings[POLICY], bucket) if POLICY in settings else None,
        grants=acl.decode(settings[ACL]) if ACL in settings else None,
        public_access_block=block,
        ownership=settings[OWNERSHIP].decode() if OWNERSHIP in settings else DEFAULT_OWNERSHIP,
    )


async def _manifest_or_none(ctx: Context, bucket: str, key: str) -> Manifest | None:
    try:
        return await ctx.engine.head_object(bucket, key)
    except NoSuchKey:
        return None


async def _allowed(
    ctx: Context,
    access: BucketAccess,
    principal: str | None,
    action: str,
    bucket: str,
    key: str | None,
    context: dict[str, str],
) -> bool:
    resource = bucket_arn(bucket) if key is None else object_arn(bucket, key)
    object_grants = None
    if key is not None and principal != access.owner:
        needs_acl = action in acl.OBJECT_ACL_ACTIONS and access.acls_enabled
        needs_tags = access.policy is not None and access.policy.mentions_condition_key(
            "s3:existingobjecttag/"
        )
        if needs_acl or needs_tags:
            manifest = await _manifest_or_none(ctx, bucket, key)
            if manifest is not None:
                object_grants = manifest.acl
                context = context | {
                    f"s3:existingobjecttag/{k}": v for k, v in manifest.tags.items()
                }
    return decide(access, principal, action, resource, context, object_grants=object_grants)


async def authorize(ctx: Context, endpoint: routing.Endpoint, now: float | None = None) -> None:
    """Decide the request, or raise AccessDenied (see the module's docstring)."""
    if isinstance(endpoint, routing.ListBuckets | routing.CreateBucket):
        if ctx.anonymous:
            raise e.AccessDenied()
        return
    bucket = getattr(endpoint, "bucket", None)
    if bucket is None:
        return
    record = await ctx.engine.head_bucket(bucket)
    principal = None if ctx.anonymous else ctx.auth.access_key
    # A bucket from before owners were recorded belongs to every key, as it always did.
    owner = record.owner or (principal or "")
    settings = await ctx.engine.bucket_settings(bucket)
    access = bucket_access(owner, settings, bucket)
    ctx.bucket_access = access
    action = action_of(endpoint)
    context = condition_context(ctx, time.time() if now is None else now)
    if isinstance(endpoint, routing.DeleteObjects):
        pass  # decided key by key, each refusal in the result (permissions.allows), as S3
    elif action is None:  # an operation only the owner may make
        if principal is None or principal != owner:
            raise e.AccessDenied()
    else:
        key = getattr(endpoint, "key", None)
        if not await _allowed(ctx, access, principal, action, bucket, key, context):
            raise e.AccessDenied()
    ctx.authorized.add(bucket)
    source = ctx.headers.get("x-amz-copy-source")
    if source is not None and isinstance(endpoint, routing.CopyObject | routing.UploadPartCopy):
        from relay.s3.copy import parse_copy_source

        source_bucket, source_key = parse_copy_source(source)
        source_record = await ctx.engine.head_bucket(source_bucket)
        source_access = bucket_access(
            source_record.owner or (principal or ""),
            await ctx.engine.bucket_settings(source_bucket),
            source_bucket,
        )
        if not await _allowed(
            ctx, source_access, principal, "s3:GetObject", source_bucket, source_key, context
        ):
            raise e.AccessDenied()
        ctx.authorized.add(source_bucket)


# -- Get/Put Bucket/Object ACL -----------------------------------------------------------


async def _read_body(ctx: Context) -> bytes:
    payload = Payload(ctx.body, ctx.auth, ctx.content_length())
    body = await drain(payload, MAX_SETTING_BODY_BYTES)
    check_body_digests(ctx.headers, body, payload.trailers)
    return body


async def _put_acl_grants(ctx: Context, owner: str) -> tuple[acl.Grant, ...]:
    grants = requested_grants(ctx, owner)
    body = await _read_body(ctx)
    if grants is not None:
        return grants
    if not body.strip():
        raise e.MissingSecurityHeader("Your request was missing a required header: x-amz-acl")
    try:
        parsed = acl.parse_document(body, ctx.known_principals)
    except acl.AclError as error:
        raise acl_error(error) from None
    return held_to_settings(ctx, parsed, owner, canned_name=None)


def _owner(ctx: Context) -> str:
    assert ctx.bucket_access is not None, "authorize() runs before every bucket handler"
    return ctx.bucket_access.owner


async def get_bucket_acl(ctx: Context, endpoint: routing.GetBucketAcl) -> Response:
    await _check(ctx, endpoint.bucket)
    access = ctx.bucket_access
    assert access is not None
    grants = access.effective_grants() if access.acls_enabled else ((access.owner, "FULL_CONTROL"),)
    return xml_response(200, acl.render_document(access.owner, grants))


async def put_bucket_acl(ctx: Context, endpoint: routing.PutBucketAcl) -> Response:
    await _check(ctx, endpoint.bucket)
    owner = _owner(ctx)
    grants = stored_grants(await _put_acl_grants(ctx, owner), owner)
    await ctx.engine.put_bucket_setting(
        endpoint.bucket, ACL, None if grants is None else acl.encode(grants)
    )
    return empty_response(200)


async def get_object_acl(ctx: Context, endpoint: routing.GetObjectAcl) -> Response:

    await _check(ctx, endpoint.bucket)
    check_version(ctx)
    manifest = await ctx.engine.head_object(endpoint.bucket, endpoint.key)
    owner = _owner(ctx)
    access = ctx.bucket_access
    grants = manifest.acl if manifest.acl is not None else ((owner, "FULL_CONTROL"),)
    if access is not None and not access.acls_enabled:
        grants = ((owner, "FULL_CONTROL"),)
    return xml_response(200, acl.render_document(owner, grants))


async def put_object_acl(ctx: Context, endpoint: routing.PutObjectAcl) -> Response:

    await _check(ctx, endpoint.bucket)
    check_version(ctx)
    await ctx.engine.head_object(endpoint.bucket, endpoint.key)
    owner = _owner(ctx)
    grants = stored_grants(await _put_acl_grants(ctx, owner), owner)

    def with_acl(current: Manifest | None) -> Manifest:
        if current is None:
            from relay.bucket import errors as engine_errors

            raise engine_errors.NoSuchKey(endpoint.bucket, endpoint.key)
        return dataclasses.replace(current, acl=grants)

    # Through the bucket's writer, in order with every other write to the key.
    await ctx.engine.update_object(endpoint.bucket, endpoint.key, with_acl)
    return empty_response(200)


async def _check(ctx: Context, bucket: str) -> None:

    await owned_bucket(ctx, bucket)


# -- policy, policy status, public access block, ownership controls ----------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_public_access_block(body: bytes) -> PublicAccessBlock:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise e.MalformedXML() from None
    if _local(root.tag) != "PublicAccessBlockConfiguration":
        raise e.MalformedXML()
    flags = {}
    names = {
        "BlockPublicAcls": "block_public_acls",
        "IgnorePublicAcls": "ignore_public_acls",
        "BlockPublicPolicy": "block_public_policy",
        "RestrictPublicBuckets": "restrict_public_buckets",
    }
    for child in root:
        name = names.get(_local(child.tag))
        value = (child.text or "").strip().lower()
        if name is None or value not in ("true", "false"):
            raise e.MalformedXML()
        flags[name] = value == "true"
    return PublicAccessBlock(**flags)


def _render_public_access_block(block: PublicAccessBlock) -> bytes:
    def flag(value: bool) -> str:
        return "true" if value else "false"

    return document(
        "PublicAccessBlockConfiguration",
        element("BlockPublicAcls", flag(block.block_public_acls))
        + element("IgnorePublicAcls", flag(block.ignore_public_acls))
        + element("BlockPublicPolicy", flag(block.block_public_policy))
        + element("RestrictPublicBuckets", flag(block.restrict_public_buckets)),
    )


def _parse_ownership(body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise e.MalformedXML() from None
    rules = [c for c in root.iter() if _local(c.tag) == "ObjectOwnership"]
    if _local(root.tag) != "OwnershipControls" or len(rules) != 1:
        raise e.MalformedXML()
    value = (rules[0].text or "").strip()
    if value not in OWNERSHIP_CHOICES:
        raise e.MalformedXML()
    if value == "ObjectWriter":
        raise e.NotImplemented_(
            "relay records no object writer: every object belongs to its bucket's owner"
            " (BucketOwnerPreferred or BucketOwnerEnforced)"
        )
    return value


async def access_setting(ctx: Context, endpoint: routing.AccessSetting) -> Response:
    await _check(ctx, endpoint.bucket)
    access = ctx.bucket_access
    assert access is not None
    bucket, setting, method = endpoint.bucket, endpoint.setting, endpoint.method
    settings_name = POLICY if setting == "policyStatus" else setting
    if method == "DELETE":
        await ctx.engine.put_bucket_setting(bucket, settings_name, None)
        return empty_response(204)
    if method == "GET":
        settings = await ctx.engine.bucket_settings(bucket)
        if setting == "policy":
            if POLICY not in settings:
                raise e.NoSuchBucketPolicy(BucketName=bucket)
            return Response(
                200,
                [("content-type", "application/json")],
                settings[POLICY],
                content_length=len(settings[POLICY]),
            )
        if setting == "policyStatus":
            if POLICY not in settings:
                raise e.NoSuchBucketPolicy(BucketName=bucket)
            public = _parsed_policy(settings[POLICY], bucket).is_public()
            status = element("IsPublic", "true" if public else "false")
            return xml_response(200, document("PolicyStatus", status))
        if setting == "publicAccessBlock":
            if PUBLIC_ACCESS_BLOCK not in settings:
                raise e.NoSuchPublicAccessBlockConfiguration(BucketName=bucket)
            return xml_response(200, _render_public_access_block(access.public_access_block))
        rule = element("ObjectOwnership", access.ownership)
        return xml_response(200, document("OwnershipControls", f"<Rule>{rule}</Rule>"))
    sent = await _read_body(ctx)
    if setting == "policy":
        try:
            policy = parse(sent, bucket, known_principals=ctx.known_principals)
        except PolicyProblem as problem:
            raise e.MalformedPolicy(str(problem)) from None
        if access.public_access_block.block_public_policy and policy.is_public():
            raise e.AccessDenied("the bucket's public access block forbids a public policy")
        await ctx.engine.put_bucket_setting(bucket, POLICY, sent)
        return empty_response(204)
    if setting == "publicAccessBlock":
        block = _parse_public_access_block(sent)
        encoded = json.dumps(dataclasses.asdict(block), sort_keys=True).encode()
        await ctx.engine.put_bucket_setting(bucket, PUBLIC_ACCESS_BLOCK, encoded)
        return empty_response(200)
    rule_name = _parse_ownership(sent)
    await ctx.engine.put_bucket_setting(bucket, OWNERSHIP, rule_name.encode())
    return empty_response(200)
