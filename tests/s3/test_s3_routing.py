"""The routing table, as a table."""

from __future__ import annotations

import pytest

from relay.s3 import routing as r
from relay.s3.errors import InvalidArgument, InvalidRequest, MethodNotAllowed

CASES = [
    ("GET", "/", "", {}, r.ListBuckets()),
    ("PUT", "/bkt", "", {}, r.CreateBucket("bkt")),
    ("PUT", "/bkt/", "", {}, r.CreateBucket("bkt")),
    ("HEAD", "/bkt", "", {}, r.HeadBucket("bkt")),
    ("DELETE", "/bkt", "", {}, r.DeleteBucket("bkt")),
    ("GET", "/bkt", "location", {}, r.GetBucketLocation("bkt")),
    ("GET", "/bkt", "", {}, r.ListObjects("bkt")),
    ("GET", "/bkt", "list-type=2&prefix=a", {}, r.ListObjectsV2("bkt")),
    ("GET", "/bkt", "uploads", {}, r.ListMultipartUploads("bkt")),
    ("POST", "/bkt", "delete", {}, r.DeleteObjects("bkt")),
    ("PUT", "/bkt/a/b%20c%2Bd+e", "", {}, r.PutObject("bkt", "a/b c+d+e")),
    ("GET", "/bkt/k", "", {}, r.GetObject("bkt", "k")),
    ("HEAD", "/bkt/k", "", {}, r.HeadObject("bkt", "k")),
    ("DELETE", "/bkt/k", "", {}, r.DeleteObject("bkt", "k")),
    ("POST", "/bkt/k", "uploads", {}, r.CreateMultipartUpload("bkt", "k")),
    ("PUT", "/bkt/k", "partNumber=3&uploadId=U", {}, r.UploadPart("bkt", "k", "U", 3)),
    ("POST", "/bkt/k", "uploadId=U", {}, r.CompleteMultipartUpload("bkt", "k", "U")),
    ("DELETE", "/bkt/k", "uploadId=U", {}, r.AbortMultipartUpload("bkt", "k", "U")),
    ("GET", "/bkt/k", "uploadId=U", {}, r.ListParts("bkt", "k", "U")),
    ("GET", "/bkt/k/", "", {}, r.GetObject("bkt", "k/")),
    ("GET", "/bkt//double", "", {}, r.GetObject("bkt", "/double")),
    ("PUT", "/bkt/k", "", {"x-amz-copy-source": "/o/k"}, r.CopyObject("bkt", "k")),
    (
        "PUT",
        "/bkt/k",
        "partNumber=2&uploadId=U",
        {"x-amz-copy-source": "o/k"},
        r.UploadPartCopy("bkt", "k", "U", 2),
    ),
    ("GET", "/bkt/k", "attributes", {}, r.GetObjectAttributes("bkt", "k")),
    ("GET", "/bkt/k", "tagging", {}, r.GetObjectTagging("bkt", "k")),
    ("PUT", "/bkt/k", "tagging", {}, r.PutObjectTagging("bkt", "k")),
    ("DELETE", "/bkt/k", "tagging", {}, r.DeleteObjectTagging("bkt", "k")),
    ("GET", "/bkt/k", "acl", {}, r.GetObjectAcl("bkt", "k")),
    ("PUT", "/bkt", "acl", {}, r.PutBucketAcl("bkt")),
    ("GET", "/bkt", "versioning", {}, r.GetBucketVersioning("bkt")),
    ("GET", "/bkt", "versions", {}, r.ListObjectVersions("bkt")),
    ("DELETE", "/bkt", "lifecycle", {}, r.DeleteBucketConfiguration("bkt", "lifecycle")),
    ("GET", "/bkt", "cors", {}, r.GetBucketCors("bkt")),
    ("PUT", "/bkt", "cors", {}, r.PutBucketCors("bkt")),
    ("DELETE", "/bkt", "cors", {}, r.DeleteBucketCors("bkt")),
    ("OPTIONS", "/bkt", "", {}, r.CorsPreflight("bkt", None)),
    ("OPTIONS", "/bkt/a/b", "uploads", {}, r.CorsPreflight("bkt", "a/b")),
    ("POST", "/bkt", "", {"content-type": "multipart/form-data; boundary=x"}, r.PostObject("bkt")),
    ("GET", "/bkt", "policy", {}, r.AccessSetting("bkt", "policy", "GET")),
    ("PUT", "/bkt", "policy", {}, r.AccessSetting("bkt", "policy", "PUT")),
    ("DELETE", "/bkt", "policy", {}, r.AccessSetting("bkt", "policy", "DELETE")),
    ("GET", "/bkt", "policyStatus", {}, r.AccessSetting("bkt", "policyStatus", "GET")),
    ("PUT", "/bkt", "publicAccessBlock", {}, r.AccessSetting("bkt", "publicAccessBlock", "PUT")),
    (
        "DELETE",
        "/bkt",
        "ownershipControls",
        {},
        r.AccessSetting("bkt", "ownershipControls", "DELETE"),
    ),
    ("GET", "/bkt", "lifecycle", {}, r.GetBucketConfiguration("bkt", "lifecycle")),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "expected"), CASES)
def test_routes(
    method: str, path: str, query: str, headers: dict[str, str], expected: r.Endpoint
) -> None:
    assert r.route(method, r.split_target(path, query), headers) == expected


@pytest.mark.parametrize(
    ("method", "path", "query", "headers"),
    [
        ("PUT", "/bkt", "lifecycle", {}),
        ("GET", "/bkt/k", "retention", {}),
        # Object lock, whatever the method: relay has none to set or show.
        ("PUT", "/bkt/k", "retention", {}),
        ("PUT", "/bkt/k", "legal-hold", {}),
        ("GET", "/bkt/k", "legal-hold", {}),
        ("PUT", "/bkt", "object-lock", {}),
    ],
)
def test_unimplemented_operations_route_to_unsupported(
    method: str, path: str, query: str, headers: dict[str, str]
) -> None:
    assert isinstance(r.route(method, r.split_target(path, query), headers), r.Unsupported)


def test_bad_part_numbers_and_methods_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        r.route("PUT", r.split_target("/b/k", "partNumber=0&uploadId=U"), {})
    with pytest.raises(InvalidArgument):
        r.route("PUT", r.split_target("/b/k", "partNumber=x&uploadId=U"), {})
    with pytest.raises(InvalidRequest):
        r.route("PUT", r.split_target("/b/k", "partNumber=1"), {})
    with pytest.raises(MethodNotAllowed):
        r.route("PATCH", r.split_target("/b/k", ""), {})
    with pytest.raises(InvalidRequest):
        r.split_target("b/k", "")


def test_every_routed_operation_has_a_handler() -> None:
    """A route without a handler would be a 500 for a valid request."""
    from relay.s3.app import _DISPATCH

    routable = {
        cls
        for cls in vars(r).values()
        if isinstance(cls, type)
        and issubclass(cls, r.Endpoint)
        and cls not in (r.Endpoint, r.BucketEndpoint, r.ObjectEndpoint, r.Unsupported)
        and cls is not r.ListBuckets
        # Answered before authentication, by the app itself (no signed request to hand on).
        and cls not in (r.CorsPreflight, r.PostObject)
    }
    assert routable - set(_DISPATCH) == set()


DOMAINS = ("s3.example.com", "example.com")

HOSTS = [
    # A bucket under a domain, with or without a port, in any case.
    ("photos.s3.example.com", "photos"),
    ("photos.s3.example.com:9000", "photos"),
    ("Photos.S3.Example.COM:9000", "photos"),
    ("photos.s3.example.com.", "photos"),
    # Dots in the bucket name; the longest matching domain wins.
    ("my.dotted.bucket.s3.example.com", "my.dotted.bucket"),
    ("other.example.com", "other"),
    # The bare domains and any other host are path-style.
    ("s3.example.com", None),
    ("s3.example.com:9000", None),
    ("example.com", None),
    ("127.0.0.1:9000", None),
    ("localhost", None),
    ("photos.s3.example.org", None),
    ("notexample.com", None),
    ("[::1]:9000", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("host", "bucket"), HOSTS)
def test_bucket_from_host(host: str | None, bucket: str | None) -> None:
    assert r.bucket_from_host(host, DOMAINS) == bucket


def test_no_domains_means_path_style_everywhere() -> None:
    assert r.bucket_from_host("photos.s3.example.com", ()) is None


VIRTUAL_HOSTED = [
    ("GET", "/", "", {}, r.ListObjects("bkt")),
    ("GET", "/", "list-type=2", {}, r.ListObjectsV2("bkt")),
    ("PUT", "/", "", {}, r.CreateBucket("bkt")),
    ("HEAD", "/", "", {}, r.HeadBucket("bkt")),
    ("GET", "/", "location", {}, r.GetBucketLocation("bkt")),
    ("POST", "/", "delete", {}, r.DeleteObjects("bkt")),
    # The whole path is the key: no bucket segment to strip.
    ("GET", "/k", "", {}, r.GetObject("bkt", "k")),
    ("PUT", "/bkt/k", "", {}, r.PutObject("bkt", "bkt/k")),
    ("PUT", "/a/b%20c%2Bd+e", "", {}, r.PutObject("bkt", "a/b c+d+e")),
    ("GET", "//double", "", {}, r.GetObject("bkt", "/double")),
    ("POST", "/k", "uploads", {}, r.CreateMultipartUpload("bkt", "k")),
    ("PUT", "/k", "partNumber=3&uploadId=U", {}, r.UploadPart("bkt", "k", "U", 3)),
    ("PUT", "/k", "", {"x-amz-copy-source": "/o/k"}, r.CopyObject("bkt", "k")),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "expected"), VIRTUAL_HOSTED)
def test_virtual_hosted_routes(
    method: str, path: str, query: str, headers: dict[str, str], expected: r.Endpoint
) -> None:
    assert r.route(method, r.split_target(path, query, "bkt"), headers) == expected
