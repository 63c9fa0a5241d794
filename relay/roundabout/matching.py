"""Which bucket, which key: reading a location claim's URL, anchored on its parsed host.

A claim says "these bytes are at this URL". To answer with a presigned URL, roundabout
must know which S3 bucket and key the URL names, and whether relay holds credentials for
that bucket. This module answers both without I/O.

Theory of operation. A URL is split with ``urllib.parse.urlsplit`` and only its parsed
*hostname* is matched, with anchored regular expressions (``^…$``), never substrings: a
host ending in ``.amazonaws.com.evil.com`` or a path containing ``s3.amazonaws.com`` names
nothing, and a URL carrying userinfo (``https://s3.amazonaws.com@evil.com/``) is refused
outright. The hostname yields an ``Endpoint``: a namespace in which bucket names are unique.

- AWS (``Service.AWS``): the namespace is the partition (``amazonaws.com`` or
  ``amazonaws.com.cn``); AWS bucket names are unique per partition, so the region in a
  URL is informational and the configured region is the one signed for. Forms:
  ``<bucket>.s3[.<region>|-<region>][.dualstack].amazonaws.com[.cn]/<key>`` (the
  dualstack label is accepted on either side of the region), the same hosts without a
  bucket label in path style (``/<bucket>/<key>``), and ``s3://<bucket>/<key>``. Website
  endpoints (``s3-website…``) are not S3 API hosts and match nothing.
- R2 (``Service.R2``): the namespace is the account id, plus the jurisdiction (``eu``,
  ``fedramp``) when there is one: ``<account>[.<jurisdiction>].r2.cloudflarestorage.com``
  in path style and ``<bucket>.<account>[.<jurisdiction>].r2.cloudflarestorage.com/<key>``.
- ``pub-<32 hex>.r2.dev`` (``Service.R2_PUBLIC``): a public bucket whose name the URL does
  not give; never signable, fetchable as it is.
- A configured custom domain (exact hostname) maps to (endpoint, bucket, key prefix).
- Any other http(s) origin (``Service.OTHER``, the namespace is ``scheme://host[:port]``)
  is read path style; it can only ever match a configured bucket on that very origin
  (a MinIO, moto or relay on an internal network).

A URL with a query or fragment is never signed (its meaning would change), and a key
must decode as UTF-8. Keys in ``s3://`` URLs are literal (as the aws CLI reads them); keys
in http(s) URLs are percent-decoded and ``+`` stays ``+``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import SplitResult, unquote_to_bytes, urlsplit

_REGION: Final = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_AWS_SERVICE: Final = (
    r"s3(?:(?P<dualstack1>\.dualstack)?[.-](?P<region>" + _REGION + r")(?P<dualstack2>\.dualstack)?"
    r"|(?P<legacy>-external-1))?\.amazonaws\.com(?P<cn>\.cn)?"
)
# Virtual-hosted buckets: DNS labels (botocore refuses dots for https, but a URL may have them).
_AWS_BUCKET_LABEL: Final = r"(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])"
_AWS_BUCKET_NAME: Final = re.compile(r"^" + _AWS_BUCKET_LABEL + r"$")
_AWS_VIRTUAL: Final = re.compile(r"^" + _AWS_BUCKET_LABEL + r"\." + _AWS_SERVICE + r"$")
_AWS_PATH: Final = re.compile(r"^" + _AWS_SERVICE + r"$")
_R2_ACCOUNT: Final = r"(?P<account>[0-9a-f]{32})(?:\.(?P<jurisdiction>eu|fedramp))?"
_R2_VIRTUAL: Final = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])\."
    + _R2_ACCOUNT
    + r"\.r2\.cloudflarestorage\.com$"
)
_R2_PATH: Final = re.compile(r"^" + _R2_ACCOUNT + r"\.r2\.cloudflarestorage\.com$")
_R2_PUBLIC: Final = re.compile(r"^pub-(?P<id>[0-9a-f]{32})\.r2\.dev$")
# botocore's isVirtualHostableS3Bucket(bucket, allowSubDomains=false): one DNS label.
_VIRTUAL_HOSTABLE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_IP_LIKE: Final = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
HTTP_SCHEMES: Final = ("http", "https")


class Service(enum.Enum):
    AWS = "aws"
    R2 = "r2"
    R2_PUBLIC = "r2.dev"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An S3 service endpoint. Two endpoints are the same bucket namespace when their
    ``service`` and ``namespace`` are equal; the other fields only shape URLs."""

    service: Service
    namespace: str
    scheme: str = field(default="https", compare=False)
    region: str | None = field(default=None, compare=False)
    dualstack: bool = field(default=False, compare=False)
    netloc: str = field(default="", compare=False)  # OTHER: host[:port] as URLs use it


@dataclass(frozen=True, slots=True)
class ObjectLocation:
    """What a URL names: a key in a bucket (``bucket`` None: a public r2.dev bucket)."""

    endpoint: Endpoint
    bucket: str | None
    key: str


@dataclass(frozen=True, slots=True)
class SigningBucket:
    """A bucket relay may presign GETs for (``[[roundabout.buckets]]``).

    Only keys under ``prefix`` are signed; ``preference`` orders candidates (lower first,
    then configuration order). ``key_access`` opens the bucket to ``/key/{key}``, which
    presigns any key under ``prefix``, claimed or not: off unless the operator says so."""

    endpoint: Endpoint
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    prefix: str = ""
    preference: int = 0
    key_access: bool = False


@dataclass(frozen=True, slots=True)
class CustomDomain:
    """``https://<domain>/<path>`` is ``<prefix><path>`` in ``bucket`` at ``endpoint``."""

    domain: str
    endpoint: Endpoint
    bucket: str
    prefix: str = ""


def aws_endpoint(region: str, *, china: bool = False, dualstack: bool = False) -> Endpoint:
    return Endpoint(
        Service.AWS,
        "amazonaws.com.cn" if china else "amazonaws.com",
        region=region,
        dualstack=dualstack,
    )


def _split(url: str) -> SplitResult | None:
    """``urlsplit`` with the checks every use needs: an http(s) URL, a host, no userinfo,
    a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return None
    if parts.scheme.lower() not in HTTP_SCHEMES or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    return parts


def _origin(parts: SplitResult) -> tuple[str, str]:
    """(scheme, host[:port]) with the host lowercased and a default port dropped."""
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        shown = f"{shown}:{port}"
    return scheme, shown


def _aws_from_match(match: re.Match[str], scheme: str) -> Endpoint:
    region = match.group("region") or ("us-east-1" if match.group("legacy") else None)
    return Endpoint(
        Service.AWS,
        "amazonaws.com.cn" if match.group("cn") else "amazonaws.com",
        scheme=scheme,
        region=region,
        dualstack=bool(match.group("dualstack1") or match.group("dualstack2")),
    )


def _r2_from_match(match: re.Match[str], scheme: str) -> Endpoint:
    jurisdiction = match.group("jurisdiction")
    account = match.group("account")
    return Endpoint(
        Service.R2, f"{account}.{jurisdiction}" if jurisdiction else account, scheme=scheme
    )


def parse_endpoint(url: str) -> Endpoint:
    """A configured service endpoint (``https://s3.eu-west-1.amazonaws.com``,
    ``https://<account>.r2.cloudflarestorage.com``, ``http://127.0.0.1:9000``).

    Raises ``ValueError`` for anything else, including a bucket's own host."""
    parts = _split(url)
    if parts is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an endpoint is scheme://host[:port] and nothing more, not {url!r}")
    scheme, netloc = _origin(parts)
    host = parts.hostname or ""
    if _AWS_VIRTUAL.match(host) or _R2_VIRTUAL.match(host) or _R2_PUBLIC.match(host):
        raise ValueError(f"{url!r} is a bucket's host; give the service endpoint")
    if match := _AWS_PATH.match(host):
        return _aws_from_match(match, scheme)
    if match := _R2_PATH.match(host):
        return _r2_from_match(match, scheme)
    return Endpoint(Service.OTHER, f"{scheme}://{netloc}", scheme=scheme, netloc=netloc)


def _decode_key(wire: str) -> str | None:
    try:
        return unquote_to_bytes(wire).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _path_style(endpoint: Endpoint, path: str) -> ObjectLocation | None:
    bucket, slash, key = path.removeprefix("/").partition("/")
    decoded_bucket, decoded_key = _decode_key(bucket), _decode_key(key)
    if not slash or not decoded_bucket or not decoded_key:
        return None
    return ObjectLocation(endpoint, decoded_bucket, decoded_key)


def _virtual(endpoint: Endpoint, bucket: str | None, path: str) -> ObjectLocation | None:
    key = _decode_key(path.removeprefix("/"))
    return ObjectLocation(endpoint, bucket, key) if key else None


def parse_url(url: str, domains: Sequence[CustomDomain] = ()) -> ObjectLocation | None:
    """The bucket and key a claim URL names, or None (not an object URL relay can read)."""
    if url.startswith("s3://"):
        bucket, slash, key = url.removeprefix("s3://").partition("/")
        if not slash or not key or not _AWS_BUCKET_NAME.match(bucket):
            return None
        return ObjectLocation(Endpoint(Service.AWS, "amazonaws.com"), bucket, key)
    parts = _split(url)
    if parts is None or parts.query or parts.fragment or url.endswith(("?", "#")):
        return None
    scheme, netloc = _origin(parts)
    host = parts.hostname or ""
    for domain in domains:
        if host == domain.domain:
            suffix = _decode_key(parts.path.removeprefix("/"))
            if not suffix:
                return None
            return ObjectLocation(domain.endpoint, domain.bucket, domain.prefix + suffix)
    if match := _AWS_VIRTUAL.match(host):
        return _virtual(_aws_from_match(match, scheme), match.group("bucket"), parts.path)
    if match := _AWS_PATH.match(host):
        return _path_style(_aws_from_match(match, scheme), parts.path)
    if match := _R2_VIRTUAL.match(host):
        return _virtual(_r2_from_match(match, scheme), match.group("bucket"), parts.path)
    if match := _R2_PATH.match(host):
        return _path_style(_r2_from_match(match, scheme), parts.path)
    if match := _R2_PUBLIC.match(host):
        endpoint = Endpoint(Service.R2_PUBLIC, match.group("id"), scheme=scheme)
        return _virtual(endpoint, None, parts.path)
    endpoint = Endpoint(Service.OTHER, f"{scheme}://{netloc}", scheme=scheme, netloc=netloc)
    return _path_style(endpoint, parts.path)


def redirectable_as_is(url: str) -> bool:
    """A URL a client can follow as it is: http(s), a host, no userinfo."""
    return _split(url) is not None


def find_signer(location: ObjectLocation, buckets: Iterable[SigningBucket]) -> SigningBucket | None:
    """The most preferred configured bucket that holds ``location``, if any."""
    if location.bucket is None:
        return None
    matching = [
        bucket
        for bucket in buckets
        if bucket.endpoint == location.endpoint
        and bucket.bucket == location.bucket
        and location.key.startswith(bucket.prefix)
    ]
    return min(matching, key=lambda bucket: bucket.preference, default=None)


def virtual_hostable(bucket: str) -> bool:
    """botocore's rule for virtual-hosted style: one lowercase DNS label, not an IP."""
    return bool(_VIRTUAL_HOSTABLE.match(bucket)) and not _IP_LIKE.match(bucket)


def object_url_parts(bucket: SigningBucket, key: str) -> tuple[str, str, str]:
    """(scheme, host, unencoded path) of a GET of ``key`` in ``bucket``, as botocore
    addresses it: virtual-hosted on AWS and R2 when the name allows, otherwise (and on
    every other endpoint) path style."""
    endpoint = bucket.endpoint
    if endpoint.service is Service.AWS:
        dualstack = "dualstack." if endpoint.dualstack else ""
        service_host = f"s3.{dualstack}{bucket.region}.{endpoint.namespace}"
    elif endpoint.service is Service.R2:
        service_host = f"{endpoint.namespace}.r2.cloudflarestorage.com"
    else:
        return endpoint.scheme, endpoint.netloc, f"/{bucket.bucket}/{key}"
    if virtual_hostable(bucket.bucket):
        return endpoint.scheme, f"{bucket.bucket}.{service_host}", f"/{key}"
    return endpoint.scheme, service_host, f"/{bucket.bucket}/{key}"
