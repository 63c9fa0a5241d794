"""Object tagging and the fixed answers for versioning and bucket configurations.

Tags live in the object's manifest, so a tag change is a commit of a new manifest that
points at the same body: no byte is read or written. The commit is conditional on the
manifest being the one the change was computed from, so a racing PUT is never undone.
relay keeps every bucket single-version: the versioning operations answer that
truthfully, and refuse (501) what would need more. ACLs are relay.s3.access's.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Final
from urllib.parse import parse_qsl

from relay.bucket import Manifest
from relay.bucket import errors as engine_errors
from relay.http import Response
from relay.s3 import errors as e
from relay.s3 import permissions
from relay.s3.buckets import owned_bucket
from relay.s3.context import Context, check_body_digests, drain, empty_response, xml_response
from relay.s3.payload import Payload
from relay.s3.routing import (
    DeleteBucketConfiguration,
    DeleteObjectTagging,
    GetBucketConfiguration,
    GetBucketVersioning,
    GetObjectTagging,
    PutBucketVersioning,
    PutObjectTagging,
)
from relay.s3.xml import document, element

MAX_TAGS: Final = 10
MAX_TAG_KEY: Final = 128
MAX_TAG_VALUE: Final = 256
MAX_CONFIG_BODY_BYTES: Final = 64 << 10


async def read_config_body(ctx: Context) -> bytes:
    """A configuration document (tags, ACL, versioning), checked against its digests."""
    payload = Payload(ctx.body, ctx.auth, ctx.content_length())
    body = await drain(payload, MAX_CONFIG_BODY_BYTES)
    check_body_digests(ctx.headers, body, payload.trailers)
    return body


def check_tags(tags: list[tuple[str, str]]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise e.InvalidTag("Object tags cannot be greater than 10")
    result: dict[str, str] = {}
    for key, value in tags:
        if not 1 <= len(key) <= MAX_TAG_KEY:
            raise e.InvalidTag("The TagKey you have provided is invalid")
        if len(value) > MAX_TAG_VALUE:
            raise e.InvalidTag("The TagValue you have provided is invalid")
        if key in result:
            raise e.InvalidTag("Cannot provide multiple Tags with the same key")
        result[key] = value
    return result


def tags_from_header(value: str | None) -> dict[str, str]:
    """``x-amz-tagging: k1=v1&k2=v2`` (URL-encoded, as on PUT and copy)."""
    if value is None:
        return {}
    return check_tags(parse_qsl(value, keep_blank_values=True))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_tagging(body: bytes) -> dict[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise e.MalformedXML() from None
    if _local(root.tag) != "Tagging":
        raise e.MalformedXML()
    pairs = []
    for tag_set in root:
        if _local(tag_set.tag) != "TagSet":
            raise e.MalformedXML()
        for tag in tag_set:
            fields = {_local(child.tag): child.text or "" for child in tag}
            if _local(tag.tag) != "Tag" or "Key" not in fields:
                raise e.MalformedXML()
            pairs.append((fields["Key"], fields.get("Value", "")))
    return check_tags(pairs)


def render_tagging(tags: dict[str, str]) -> bytes:
    entries = "".join(
        f"<Tag>{element('Key', key)}{element('Value', value)}</Tag>"
        for key, value in sorted(tags.items())  # S3 lists tags by key
    )
    return document("Tagging", f"<TagSet>{entries}</TagSet>")


def check_version(ctx: Context) -> None:
    """relay buckets are single-version: the only version id is ``null``."""
    version = ctx.query.get("versionId")
    if version is not None and version != "null":
        raise e.NoSuchVersion(Key=ctx.target.key or "", VersionId=version)


async def _replace_tags(ctx: Context, bucket: str, key: str, tags: dict[str, str]) -> None:
    await owned_bucket(ctx, bucket)
    check_version(ctx)

    def with_tags(current: Manifest | None) -> Manifest:
        if current is None:
            raise engine_errors.NoSuchKey(bucket, key)
        return dataclasses.replace(current, tags=tags)

    # The writer applies this to the object as it is when its turn comes, so a PutObject
    # racing the tagging is ordered with it, never answered with a retry.
    await ctx.engine.update_object(bucket, key, with_tags)


async def get_object_tagging(ctx: Context, endpoint: GetObjectTagging) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    check_version(ctx)
    manifest = await ctx.engine.head_object(endpoint.bucket, endpoint.key)
    return xml_response(200, render_tagging(manifest.tags))


async def put_object_tagging(ctx: Context, endpoint: PutObjectTagging) -> Response:
    body = await read_config_body(ctx)
    await _replace_tags(ctx, endpoint.bucket, endpoint.key, parse_tagging(body))
    return empty_response(200)


async def delete_object_tagging(ctx: Context, endpoint: DeleteObjectTagging) -> Response:
    await _replace_tags(ctx, endpoint.bucket, endpoint.key, {})
    return empty_response(204)


# -- ACLs -------------------------------------------------------------------------------


def check_canned_acl(ctx: Context) -> None:
    """A write's ``x-amz-acl`` / ``x-amz-grant-*``, refused before its body is read if
    malformed or not allowed on the bucket (relay.s3.access applies it at the write)."""
    permissions.check_acl_headers(ctx)


# -- versioning and bucket configurations ------------------------------------------------


async def get_bucket_versioning(ctx: Context, endpoint: GetBucketVersioning) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    # No Status element: versioning was never enabled on this bucket.
    return xml_response(200, document("VersioningConfiguration", ""))


async def put_bucket_versioning(ctx: Context, endpoint: PutBucketVersioning) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    body = await read_config_body(ctx)
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise e.MalformedXML() from None
    status = [c.text for c in root if _local(c.tag) == "Status"]
    if status == ["Enabled"]:
        raise e.NotImplemented_("relay buckets are single-version: versioning cannot be enabled")
    if [c.text for c in root if _local(c.tag) == "MfaDelete"] == ["Enabled"]:
        raise e.NotImplemented_("relay does not implement MFA delete: it cannot be enabled")
    return empty_response(200)


_NO_SUCH_CONFIGURATION: Final[dict[str, type[e.S3Error]]] = {
    "tagging": e.NoSuchTagSet,
    "policy": e.NoSuchBucketPolicy,
    "policyStatus": e.NoSuchBucketPolicy,
    "cors": e.NoSuchCORSConfiguration,
    "lifecycle": e.NoSuchLifecycleConfiguration,
    "website": e.NoSuchWebsiteConfiguration,
    "encryption": e.ServerSideEncryptionConfigurationNotFoundError,
    "publicAccessBlock": e.NoSuchPublicAccessBlockConfiguration,
    "ownershipControls": e.OwnershipControlsNotFoundError,
    "object-lock": e.ObjectLockConfigurationNotFoundError,
    "replication": e.ReplicationConfigurationNotFoundError,
}
# Configurations whose absence S3 reports as an empty document rather than an error.
_EMPTY_CONFIGURATION: Final[dict[str, bytes]] = {
    "logging": document("BucketLoggingStatus", ""),
    "notification": document("NotificationConfiguration", ""),
    "accelerate": document("AccelerateConfiguration", ""),
    "requestPayment": document("RequestPaymentConfiguration", element("Payer", "BucketOwner")),
}


async def get_bucket_configuration(ctx: Context, endpoint: GetBucketConfiguration) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    if endpoint.subresource in _EMPTY_CONFIGURATION:
        return xml_response(200, _EMPTY_CONFIGURATION[endpoint.subresource])
    error = _NO_SUCH_CONFIGURATION.get(endpoint.subresource, e.NoSuchConfiguration)
    raise error(BucketName=endpoint.bucket)


async def delete_bucket_configuration(
    ctx: Context, endpoint: DeleteBucketConfiguration
) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    return empty_response(204)
