"""Routing is data: ``route()`` maps (method, path, query, headers) to a frozen endpoint.

Path-style addressing: ``/`` is the service, ``/bucket`` the bucket, and ``/bucket/key``
an object (the key is everything after the first slash, percent-decoded; ``+`` in a path
is a literal plus). Virtual-hosted addressing, when relay is given its domains
(``http.domains``): a Host of ``bucket.<domain>[:port]`` names the bucket
(``bucket_from_host``), and the whole path is the key (``/`` the bucket itself); the bare
domain and any other host are path-style. The query's sub-resource keys (``?uploads``,
``?uploadId=``, ``?delete``…) pick the operation, as in S3. An operation relay does not
implement routes to ``Unsupported`` (501 NotImplemented), never to a wrong handler.
``OPTIONS`` on a bucket or object is a CORS preflight; ``POST /bucket`` (without
``?delete``) is a browser form upload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from relay.s3.errors import InvalidArgument, InvalidRequest, MethodNotAllowed


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Base of all routes. ``name`` is the S3 operation name, for logs and errors."""

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class ListBuckets(Endpoint):
    pass


@dataclass(frozen=True, slots=True)
class BucketEndpoint(Endpoint):
    bucket: str


@dataclass(frozen=True, slots=True)
class ObjectEndpoint(Endpoint):
    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class CreateBucket(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class HeadBucket(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class DeleteBucket(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetBucketLocation(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class ListObjects(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class ListObjectsV2(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class ListMultipartUploads(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class DeleteObjects(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class PutObject(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetObject(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class HeadObject(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class DeleteObject(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class CreateMultipartUpload(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class UploadPart(ObjectEndpoint):
    upload_id: str
    part_number: int


@dataclass(frozen=True, slots=True)
class CompleteMultipartUpload(ObjectEndpoint):
    upload_id: str


@dataclass(frozen=True, slots=True)
class AbortMultipartUpload(ObjectEndpoint):
    upload_id: str


@dataclass(frozen=True, slots=True)
class ListParts(ObjectEndpoint):
    upload_id: str


@dataclass(frozen=True, slots=True)
class CopyObject(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class UploadPartCopy(ObjectEndpoint):
    upload_id: str
    part_number: int


@dataclass(frozen=True, slots=True)
class GetObjectAttributes(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetObjectTagging(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class PutObjectTagging(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class DeleteObjectTagging(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetObjectAcl(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class PutObjectAcl(ObjectEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetBucketAcl(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class PutBucketAcl(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetBucketVersioning(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class PutBucketVersioning(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class ListObjectVersions(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class GetBucketConfiguration(BucketEndpoint):
    """A bucket configuration relay never holds: answered with its "no such" error."""

    subresource: str


@dataclass(frozen=True, slots=True)
class DeleteBucketConfiguration(BucketEndpoint):
    """Deleting a configuration relay never holds: nothing to do, as S3 answers."""

    subresource: str


@dataclass(frozen=True, slots=True)
class GetBucketCors(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class PutBucketCors(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class DeleteBucketCors(BucketEndpoint):
    pass


@dataclass(frozen=True, slots=True)
class CorsPreflight(Endpoint):
    """``OPTIONS`` on a bucket (``key`` None) or an object: answered from the bucket's
    CORS rules, without authentication (browsers send no credentials with it)."""

    bucket: str
    key: str | None


@dataclass(frozen=True, slots=True)
class PostObject(BucketEndpoint):
    """A browser form upload (``POST /bucket``, multipart/form-data): its form carries
    the key and the signed policy, so the request itself is not signed."""


@dataclass(frozen=True, slots=True)
class AccessSetting(BucketEndpoint):
    """Get/Put/Delete of a bucket's policy, public access block or ownership controls,
    and GetBucketPolicyStatus (relay.s3.access)."""

    setting: str  # one of ACCESS_SETTINGS
    method: str  # GET, PUT or DELETE

    @property
    def name(self) -> str:
        verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}[self.method]
        return f"{verb}Bucket{self.setting[0].upper()}{self.setting[1:]}"


@dataclass(frozen=True, slots=True)
class Unsupported(Endpoint):
    """An S3 operation relay does not implement (yet): answered 501 NotImplemented."""

    operation: str


# Bucket configurations relay never holds: GET answers the "no such configuration" error
# S3 gives for a bucket without one; PUT is not implemented; DELETE has nothing to do.
BUCKET_CONFIGURATIONS = (
    "analytics", "encryption", "intelligent-tiering", "inventory", "lifecycle",
    "logging", "metrics", "notification", "object-lock", "ownershipControls", "policy",
    "policyStatus", "publicAccessBlock", "replication", "requestPayment", "tagging",
    "website", "accelerate",
)  # fmt: skip
ACCESS_SETTINGS = ("policy", "policyStatus", "publicAccessBlock", "ownershipControls")
_OBJECT_SUBRESOURCES = ("legal-hold", "restore", "retention", "select", "torrent")


@dataclass(frozen=True, slots=True)
class Target:
    """A request target split into the pieces routing and handlers need."""

    bucket: str | None
    key: str | None
    query: dict[str, str]


def bucket_from_host(host: str | None, domains: Sequence[str]) -> str | None:
    """The bucket a virtual-hosted request's Host names, or None for path-style.

    ``host`` is the Host header (any case, with or without a port); ``domains`` are
    relay's own (lowercase, no port). ``photos.s3.example.com:9000`` names ``photos`` under
    ``s3.example.com``; with several matching domains the longest wins, so ``a.b.example``
    under ``b.example`` and ``example`` is bucket ``a``.
    """
    if not host or not domains:
        return None
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal is never a bucket's host
        return None
    name = name.partition(":")[0].rstrip(".")
    if name in domains:  # one of relay's own names, even if it sits under another
        return None
    best: str | None = None
    for domain in domains:
        if name.endswith("." + domain) and (best is None or len(domain) > len(best)):
            best = domain
    if best is None:
        return None
    return name[: -len(best) - 1]


def split_target(path: str, query: str, host_bucket: str | None = None) -> Target:
    """Split a request target; ``host_bucket`` is the bucket a virtual-hosted request's
    Host names (``bucket_from_host``), and then the whole path is the key."""
    if not path.startswith("/"):
        raise InvalidRequest("the request target must be an absolute path")
    rest = path[1:]
    if host_bucket is not None:
        bucket: str | None = host_bucket
        key = unquote(rest) if rest else None
    else:
        bucket_part, slash, key_part = rest.partition("/")
        bucket = unquote(bucket_part) if bucket_part else None
        key = unquote(key_part) if slash and key_part else None
    pairs = parse_qsl(query, keep_blank_values=True)
    return Target(bucket, key, dict(pairs))


def _part_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument("Part number must be an integer between 1 and 10000") from None
    if not 1 <= number <= 10000:
        raise InvalidArgument("Part number must be an integer between 1 and 10000")
    return number


def route(method: str, target: Target, headers: Mapping[str, str]) -> Endpoint:
    """The endpoint for a request; ``headers`` maps lowercase names to values."""
    bucket, key, query = target.bucket, target.key, target.query
    if bucket is None:
        if method in ("GET", "HEAD"):
            return ListBuckets()
        raise MethodNotAllowed()
    if method == "OPTIONS":
        return CorsPreflight(bucket, key)
    if key is None:
        return _route_bucket(method, bucket, query)
    return _route_object(method, bucket, key, query, headers)


def _route_bucket(method: str, bucket: str, query: Mapping[str, str]) -> Endpoint:
    if "cors" in query:
        by_method = {"GET": GetBucketCors, "PUT": PutBucketCors, "DELETE": DeleteBucketCors}
        if method not in by_method:
            raise MethodNotAllowed()
        return by_method[method](bucket)
    for name in ACCESS_SETTINGS:
        if name in query:
            if method not in ("GET", "PUT", "DELETE") or (
                name == "policyStatus" and method != "GET"
            ):
                raise MethodNotAllowed()
            return AccessSetting(bucket, name, method)
    for name in BUCKET_CONFIGURATIONS:
        if name in query:
            if method == "GET":
                return GetBucketConfiguration(bucket, name)
            if method == "DELETE":
                return DeleteBucketConfiguration(bucket, name)
            return Unsupported(f"{method} bucket ?{name}")
    if "acl" in query:
        if method == "GET":
            return GetBucketAcl(bucket)
        if method == "PUT":
            return PutBucketAcl(bucket)
        raise MethodNotAllowed()
    if "versioning" in query:
        if method == "GET":
            return GetBucketVersioning(bucket)
        if method == "PUT":
            return PutBucketVersioning(bucket)
        raise MethodNotAllowed()
    if method == "GET":
        if "location" in query:
            return GetBucketLocation(bucket)
        if "uploads" in query:
            return ListMultipartUploads(bucket)
        if "versions" in query:
            return ListObjectVersions(bucket)
        if query.get("list-type") == "2":
            return ListObjectsV2(bucket)
        return ListObjects(bucket)
    if method == "HEAD":
        return HeadBucket(bucket)
    if method == "PUT":
        return CreateBucket(bucket)
    if method == "DELETE":
        return DeleteBucket(bucket)
    if method == "POST":
        if "delete" in query:
            return DeleteObjects(bucket)
        return PostObject(bucket)
    raise MethodNotAllowed()


def _route_object(
    method: str, bucket: str, key: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> Endpoint:
    for name in _OBJECT_SUBRESOURCES:
        if name in query:
            return Unsupported(f"{method} object ?{name}")
    if "tagging" in query:
        by_method = {
            "GET": GetObjectTagging,
            "PUT": PutObjectTagging,
            "DELETE": DeleteObjectTagging,
        }
        if method not in by_method:
            raise MethodNotAllowed()
        return by_method[method](bucket, key)
    if "acl" in query:
        if method == "GET":
            return GetObjectAcl(bucket, key)
        if method == "PUT":
            return PutObjectAcl(bucket, key)
        raise MethodNotAllowed()
    upload_id = query.get("uploadId")
    if method == "GET":
        if "attributes" in query:
            return GetObjectAttributes(bucket, key)
        if upload_id is not None:
            return ListParts(bucket, key, upload_id)
        return GetObject(bucket, key)
    if method == "HEAD":
        return HeadObject(bucket, key)
    if method == "PUT":
        copying = "x-amz-copy-source" in headers
        if upload_id is not None or "partNumber" in query:
            if upload_id is None or "partNumber" not in query:
                raise InvalidRequest("UploadPart needs both uploadId and partNumber")
            number = _part_number(query["partNumber"])
            if copying:
                return UploadPartCopy(bucket, key, upload_id, number)
            return UploadPart(bucket, key, upload_id, number)
        if copying:
            return CopyObject(bucket, key)
        return PutObject(bucket, key)
    if method == "DELETE":
        if upload_id is not None:
            return AbortMultipartUpload(bucket, key, upload_id)
        return DeleteObject(bucket, key)
    if method == "POST":
        if "uploads" in query:
            return CreateMultipartUpload(bucket, key)
        if upload_id is not None:
            return CompleteMultipartUpload(bucket, key, upload_id)
        return Unsupported("POST object")
    raise MethodNotAllowed()
