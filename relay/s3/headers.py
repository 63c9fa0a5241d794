"""Every request header AWS defines for the operations relay serves, and what relay does with it.

A header that changes what a write means (encrypt this, lock this, keep it in GLACIER) and
is then quietly dropped is worse than an error: the client believes something relay never
did. So each header S3's API reference defines for an operation relay serves has one row
here, and the row says one of three things:

- ``Honoured``: relay does what the header asks; ``by`` names where.
- ``Refused``: relay does not do it, so the request is answered with an S3 error that
  names the header (``NotImplemented`` 501 for a feature relay lacks, or the 400 AWS gives
  when a bucket is not set up for it). ``unless`` lists the values relay does honour
  (``x-amz-storage-class: STANDARD``, ``x-amz-bucket-object-lock-enabled: false``).
- ``Ignored``: dropping it is correct by design, and ``because`` says why
  (``x-amz-request-payer``: relay bills no one).

``check_request_headers`` is pure and runs in dispatch after routing and SigV4 and before
any handler, so a refused request is answered before its body is read: nothing is stored
and a client waiting on ``100 Continue`` never uploads. Some headers are refused whatever
the operation (the encryption and object-lock families): sent where AWS does not define
them, they still ask for something relay does not do. A header AWS does not define for the
operation, and that no operation honours differently, is not this operation's business and
passes, as on S3.

The table is the audit: ``tests/s3/test_s3_headers.py`` checks that every header botocore's
model of S3 defines for each of these operations has a row, and drives every refusal
through a real server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from relay.chunker import Checksum
from relay.s3 import routing as r
from relay.s3.errors import (
    InvalidRequest,
    InvalidStorageClass,
    NotImplemented_,
    S3Error,
)

# An echoed value is an enumeration value gone wrong (a storage class, a namespace); keep
# the error document small whatever the client sent.
_MAX_ECHOED_VALUE_CHARS: Final = 64


@dataclass(frozen=True, slots=True)
class Honoured:
    by: str


@dataclass(frozen=True, slots=True)
class Ignored:
    because: str


@dataclass(frozen=True, slots=True)
class Refused:
    error: type[S3Error]
    because: str
    # Upper-cased values relay does honour; any other value is refused. Empty: every value.
    unless: frozenset[str] = field(default_factory=frozenset)

    def check(self, header: str, value: str) -> None:
        if self.unless and value.strip().upper() in self.unless:
            return
        raise self.refusal(header, value)

    def refusal(self, header: str, value: str) -> S3Error:
        """The error for ``header: value``. The value is echoed only for headers with a
        list of honoured values (enumerations); never for a key or a key's digest."""
        shown = header
        if self.unless:
            shown = f"{header}: {value.strip()[:_MAX_ECHOED_VALUE_CHARS]}"
        message = f"{shown} is not supported: {self.because}"
        if self.error is NotImplemented_:
            return self.error(message, Header=header)
        return self.error(message, ArgumentName=header)


Rule = Honoured | Ignored | Refused
Rules = Mapping[str, Rule]

# -- the header families ------------------------------------------------------------------

_SSE_C: Final = Refused(
    NotImplemented_,
    "relay does not implement server-side encryption with customer-provided keys (SSE-C):"
    " it neither encrypts with the key nor asks for it to read",
)
_SSE: Final = Refused(
    NotImplemented_,
    "relay does not implement server-side encryption (SSE-S3, SSE-KMS); objects are stored"
    " as the client sends them",
)
_OBJECT_LOCK: Final = Refused(
    InvalidRequest,
    "relay does not implement object lock (retention, legal hold), so it cannot make an"
    " object immutable; no relay bucket has an Object Lock configuration",
)
_WEBSITE: Final = Refused(
    NotImplemented_, "relay does not serve buckets as websites, so it keeps no redirect"
)

SSE_C_HEADERS: Final = (
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
)
SSE_C_SOURCE_HEADERS: Final = tuple(
    name.replace("x-amz-", "x-amz-copy-source-", 1) for name in SSE_C_HEADERS
)
SSE_HEADERS: Final = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
)
OBJECT_LOCK_HEADERS: Final = (
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-object-lock-event-hold",
    "x-amz-object-lock-event-hold-duration-days",
    "x-amz-object-lock-event-hold-duration-years",
)

# Refused on every operation: each asks for something no relay operation does, so a client
# sending one where AWS does not define it still believes in something that is not there.
REFUSED_EVERYWHERE: Final[Mapping[str, Refused]] = {
    **dict.fromkeys(SSE_C_HEADERS, _SSE_C),
    **dict.fromkeys(SSE_C_SOURCE_HEADERS, _SSE_C),
    **dict.fromkeys(SSE_HEADERS, _SSE),
    **dict.fromkeys(OBJECT_LOCK_HEADERS, _OBJECT_LOCK),
    "x-amz-website-redirect-location": _WEBSITE,
}

# Every x-amz-checksum-<algorithm> AWS defines: checked when relay computes the algorithm,
# refused when it does not (a value that is never compared is an integrity check skipped).
AWS_CHECKSUM_ALGORITHMS: Final = (
    "crc32", "crc32c", "crc64nvme", "sha1", "sha256", "sha512", "md5",
    "xxhash64", "xxhash3", "xxhash128",
)  # fmt: skip
_COMPUTED: Final = frozenset(kind.value for kind in Checksum)


def _checksum_value_rule(algorithm: str, by: str) -> Rule:
    if algorithm in _COMPUTED:
        return Honoured(by)
    return Refused(NotImplemented_, f"relay does not compute {algorithm.upper()} checksums")


def _checksum_values(by: str) -> Rules:
    return {
        f"x-amz-checksum-{algorithm}": _checksum_value_rule(algorithm, by)
        for algorithm in AWS_CHECKSUM_ALGORITHMS
    }


_EXPECTED_OWNER: Final[Rules] = {
    "x-amz-expected-bucket-owner": Honoured(
        "buckets.owned_bucket: 403 AccessDenied unless it names the bucket's owner"
    )
}
_REQUEST_PAYER: Final[Rules] = {
    "x-amz-request-payer": Ignored(
        "it acknowledges Requester Pays charges; relay charges no one for a request"
    )
}
_BUCKET: Final[Rules] = {**_EXPECTED_OWNER}
_READ_OBJECT: Final[Rules] = {**_EXPECTED_OWNER, **_REQUEST_PAYER}
_GRANTS: Final[Rules] = {
    name: Honoured(
        "permissions.requested_grants: grants to relay's keys (id=) and the AllUsers and"
        " AuthenticatedUsers groups (uri=) are kept and enforced; an e-mail grantee is 400"
        " UnresolvableGrantByEmailAddress, an unknown id or group 400 InvalidArgument"
    )
    for name in (
        "x-amz-grant-full-control",
        "x-amz-grant-read",
        "x-amz-grant-read-acp",
        "x-amz-grant-write",
        "x-amz-grant-write-acp",
    )
}
_CANNED_ACL: Final[Rules] = {
    "x-amz-acl": Honoured(
        "permissions.requested_grants: the six canned ACLs relay has grantees for are kept and"
        " enforced; aws-exec-read and log-delivery-write are 501 NotImplemented, a name S3"
        " does not define 400 InvalidArgument"
    )
}
_STORAGE_CLASS: Final[Rules] = {
    "x-amz-storage-class": Refused(
        InvalidStorageClass,
        "relay has one storage class, STANDARD",
        unless=frozenset({"STANDARD"}),
    )
}
_STORED_CONTENT: Final[Rules] = {
    name: Honoured("objects.stored_headers: stored and returned on GET and HEAD")
    for name in (
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "expires",
        "x-amz-meta-*",
    )
}
_TAGGING: Final[Rules] = {
    "x-amz-tagging": Honoured("tagging.tags_from_header: stored as the object's tag set")
}
_CONTENT_MD5: Final[Rules] = {
    "content-md5": Honoured("the body's MD5 is compared before commit: 400 BadDigest")
}
_SDK_CHECKSUM: Final[Rules] = {
    "x-amz-sdk-checksum-algorithm": Honoured(
        "objects.requested_checksums: the named checksum is computed and compared"
    )
}
_SMALL_BODY_CHECKS: Final[Rules] = {
    "content-md5": Honoured("context.check_body_digests: 400 BadDigest when it differs"),
    "x-amz-sdk-checksum-algorithm": Ignored(
        "it names which x-amz-checksum-* header the SDK sent; that header is checked"
    ),
    **_checksum_values("context.check_body_digests: 400 BadDigest when it differs"),
}
_WRITE_CONDITIONS: Final[Rules] = {
    "if-match": Honoured("conditions.write_precondition, decided at commit: 412"),
    "if-none-match": Honoured("conditions.write_precondition ('*' only), decided at commit: 412"),
}
_READ_CONDITIONS: Final[Rules] = {
    name: Honoured("conditions.check_read: 412 or 304")
    for name in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
}
_COPY_SOURCE: Final[Rules] = {
    "x-amz-copy-source": Honoured("copy.parse_copy_source"),
    **{
        f"x-amz-copy-source-{name}": Honoured("conditions.check_read on the source: 412")
        for name in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
    },
    "x-amz-source-expected-bucket-owner": Honoured(
        "buckets.owned_bucket on the source: 403 AccessDenied unless it names its owner"
    ),
}
_CHECKSUM_ALGORITHM: Final[Rules] = {
    # Every algorithm AWS defines is computed; an unknown name gets S3's own 400 there.
    "x-amz-checksum-algorithm": Honoured(
        "checksums.upload_checksum: echoed; every part must carry it; Complete combines"
    )
}
_DIRECTORY_BUCKETS_ONLY: Final = Refused(
    NotImplemented_, "this condition is defined for directory buckets, which relay does not have"
)
_NEW_OBJECT: Final[Rules] = {
    **_READ_OBJECT,
    **_CANNED_ACL,
    **_GRANTS,
    **_STORAGE_CLASS,
    **_STORED_CONTENT,
    **_TAGGING,
}

_OPERATIONS: Final[dict[type[r.Endpoint], Rules]] = {
    r.ListBuckets: {},
    r.CreateBucket: {
        "x-amz-acl": Honoured(
            "buckets.create_bucket: the canned ACL becomes the bucket's"
            " (permissions.requested_grants)"
        ),
        **_GRANTS,
        "x-amz-bucket-object-lock-enabled": Refused(
            NotImplemented_,
            "relay does not implement object lock, so it cannot create a bucket whose"
            " objects are immutable",
            unless=frozenset({"FALSE"}),
        ),
        "x-amz-object-ownership": Ignored(
            "only the bucket's owner can write to a relay bucket, so under each of the"
            " three settings every object is owned by the bucket's owner"
        ),
        "x-amz-bucket-namespace": Refused(
            NotImplemented_,
            "relay has one namespace of bucket names, global",
            unless=frozenset({"GLOBAL"}),
        ),
    },
    r.HeadBucket: _BUCKET,
    r.DeleteBucket: _BUCKET,
    r.GetBucketLocation: _BUCKET,
    r.ListObjects: {
        **_READ_OBJECT,
        "x-amz-optional-object-attributes": Ignored(
            "it asks for RestoreStatus, which S3 gives only for archived objects; relay"
            " never archives one"
        ),
    },
    r.ListMultipartUploads: _READ_OBJECT,
    r.DeleteObjects: {
        **_READ_OBJECT,
        **_SMALL_BODY_CHECKS,
        "x-amz-mfa": Ignored("no relay bucket has MFA delete, so no deletion needs it"),
        "x-amz-bypass-governance-retention": Ignored(
            "relay has no object lock, so there is no retention to bypass"
        ),
    },
    r.PutObject: {
        **_NEW_OBJECT,
        **_CONTENT_MD5,
        **_SDK_CHECKSUM,
        **_checksum_values("objects.body_verifier: 400 BadDigest when it differs"),
        **_WRITE_CONDITIONS,
        "content-length": Honoured("payload.Payload: the body must be exactly this long"),
        "x-amz-write-offset-bytes": Refused(
            NotImplemented_, "relay does not append to objects (directory buckets only)"
        ),
    },
    r.GetObject: {
        **_READ_OBJECT,
        **_READ_CONDITIONS,
        "range": Honoured("objects.parse_range: 206 with the range, 416 when unsatisfiable"),
        "x-amz-checksum-mode": Honoured("objects.get_object: ENABLED returns the checksums"),
    },
    r.DeleteObject: {
        **_READ_OBJECT,
        "if-match": Honoured("conditions.delete_precondition, decided at commit: 412"),
        "x-amz-if-match-last-modified-time": _DIRECTORY_BUCKETS_ONLY,
        "x-amz-if-match-size": _DIRECTORY_BUCKETS_ONLY,
        "x-amz-mfa": Ignored("no relay bucket has MFA delete, so no deletion needs it"),
        "x-amz-bypass-governance-retention": Ignored(
            "relay has no object lock, so there is no retention to bypass"
        ),
    },
    r.CreateMultipartUpload: {
        **_NEW_OBJECT,
        **_CHECKSUM_ALGORITHM,
        "x-amz-checksum-type": Honoured(
            "checksums.upload_checksum: COMPOSITE or FULL_OBJECT, as the algorithm allows"
        ),
    },
    r.UploadPart: {
        **_READ_OBJECT,
        **_CONTENT_MD5,
        **_SDK_CHECKSUM,
        **_checksum_values("objects.body_verifier: 400 BadDigest when it differs"),
        "content-length": Honoured("payload.Payload: the body must be exactly this long"),
    },
    r.CompleteMultipartUpload: {
        **_READ_OBJECT,
        **_WRITE_CONDITIONS,
        **_checksum_values(
            "checksums.complete_expectation: compared with the combined checksum: 400 BadDigest"
        ),
        "x-amz-checksum-type": Honoured(
            "checksums.complete_expectation: must be the type the upload was created with"
        ),
        "x-amz-mp-object-size": Refused(
            NotImplemented_, "relay does not compare the expected size of the completed object"
        ),
    },
    r.AbortMultipartUpload: {
        **_READ_OBJECT,
        "x-amz-if-match-initiated-time": _DIRECTORY_BUCKETS_ONLY,
    },
    r.ListParts: _READ_OBJECT,
    r.CopyObject: {
        **_NEW_OBJECT,
        **_COPY_SOURCE,
        **_WRITE_CONDITIONS,
        "x-amz-metadata-directive": Honoured("copy.copy_object: COPY or REPLACE"),
        "x-amz-tagging-directive": Honoured("copy.copy_object: COPY or REPLACE"),
        "x-amz-object-annotation-directive": Ignored(
            "relay objects carry no annotations: COPY and EXCLUDE both copy none"
        ),
        "x-amz-checksum-algorithm": Refused(
            NotImplemented_,
            "relay's copy keeps the source's checksums and computes no new one",
        ),
    },
    r.UploadPartCopy: {
        **_READ_OBJECT,
        **_COPY_SOURCE,
        "x-amz-copy-source-range": Honoured("copy.upload_part_copy: 416 when out of range"),
    },
    r.GetObjectAttributes: {
        **_READ_OBJECT,
        "x-amz-object-attributes": Honoured("objects.get_object_attributes"),
        "x-amz-max-parts": Honoured("objects.get_object_attributes"),
        "x-amz-part-number-marker": Honoured("objects.get_object_attributes"),
    },
    r.GetObjectTagging: _READ_OBJECT,
    r.PutObjectTagging: {**_READ_OBJECT, **_SMALL_BODY_CHECKS},
    r.DeleteObjectTagging: _BUCKET,
    r.GetObjectAcl: _READ_OBJECT,
    r.PutObjectAcl: {**_READ_OBJECT, **_SMALL_BODY_CHECKS, **_CANNED_ACL, **_GRANTS},
    r.GetBucketAcl: _BUCKET,
    r.PutBucketAcl: {**_BUCKET, **_SMALL_BODY_CHECKS, **_CANNED_ACL, **_GRANTS},
    r.GetBucketVersioning: _BUCKET,
    r.PutBucketVersioning: {
        **_BUCKET,
        **_SMALL_BODY_CHECKS,
        "x-amz-mfa": Ignored(
            "it authorises changing MFA delete, which relay refuses to enable in the body"
        ),
    },
    r.GetBucketConfiguration: _READ_OBJECT,
    r.DeleteBucketConfiguration: _BUCKET,
    r.GetBucketCors: _BUCKET,
    r.PutBucketCors: {**_BUCKET, **_SMALL_BODY_CHECKS},
    r.DeleteBucketCors: _BUCKET,
    r.AccessSetting: {
        **_BUCKET,
        **_SMALL_BODY_CHECKS,
        "x-amz-confirm-remove-self-bucket-access": Ignored(
            "no policy can lock a relay bucket's owner out of managing its policy"
        ),
    },
}
# One row per S3 operation; relay answers these with the handler of its twin.
OPERATIONS: Final[Mapping[type[r.Endpoint], Rules]] = {
    **_OPERATIONS,
    r.HeadObject: _OPERATIONS[r.GetObject],
    r.ListObjectsV2: _OPERATIONS[r.ListObjects],
    r.ListObjectVersions: _OPERATIONS[r.ListObjects],
}


def rule_for(operation: type[r.Endpoint], header: str) -> Rule | None:
    """The row for ``header`` (lowercase) on ``operation``, or None: not its business."""
    rules = OPERATIONS.get(operation, {})
    rule = rules.get(header)
    if rule is None and header.startswith("x-amz-meta-"):
        rule = rules.get("x-amz-meta-*")
    if rule is None:
        rule = REFUSED_EVERYWHERE.get(header)
    return rule


def check_request_headers(operation: type[r.Endpoint], headers: Mapping[str, str]) -> None:
    """Raise the S3 error for the first header relay refuses on ``operation``.

    ``headers`` maps lowercase names to values. Pure: dispatch calls it before any body
    byte is read.
    """
    for name, value in headers.items():
        rule = rule_for(operation, name)
        if isinstance(rule, Refused):
            rule.check(name, value)
