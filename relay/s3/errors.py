"""S3 errors: one table of codes with the HTTP status AWS uses, rendered in one place.

Handlers raise ``S3Error`` subclasses; lower layers raise their own small errors and
``from_engine_error`` converts them at the boundary. Anything unexpected becomes
``InternalError`` without leaking its text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar


class S3Error(Exception):
    code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "We encountered an internal error. Please try again."

    def __init__(
        self, message: str | None = None, *, resource: str | None = None, **extra: str
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.resource = resource
        self.extra = extra  # more elements for the error document (e.g. BucketName, Key)


def _error(code: str, status: int, message: str) -> type[S3Error]:
    return type(code, (S3Error,), {"code": code, "status": status, "default_message": message})


InternalError = S3Error
AccessDenied = _error("AccessDenied", 403, "Access Denied")
AuthorizationHeaderMalformed = _error(
    "AuthorizationHeaderMalformed", 400, "The authorization header is malformed."
)
AuthorizationQueryParametersError = _error(
    "AuthorizationQueryParametersError", 400, "Error parsing the X-Amz-Credential parameter."
)
BadDigest = _error(
    "BadDigest", 400, "The Content-MD5 or checksum you specified did not match what we received."
)
BucketAlreadyExists = _error(
    "BucketAlreadyExists", 409, "The requested bucket name is not available."
)
BucketAlreadyOwnedByYou = _error(
    "BucketAlreadyOwnedByYou",
    409,
    "Your previous request to create the named bucket succeeded and you already own it.",
)
BucketNotEmpty = _error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty.")
EntityTooLarge = _error(
    "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size."
)
EntityTooSmall = _error(
    "EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."
)
IncompleteBody = _error(
    "IncompleteBody",
    400,
    "You did not provide the number of bytes specified by the Content-Length.",
)
InvalidAccessKeyId = _error(
    "InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."
)
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
InvalidPart = _error(
    "InvalidPart",
    400,
    "One or more of the specified parts could not be found. The part may not have been"
    " uploaded, or the specified entity tag may not match the part's entity tag.",
)
InvalidPartOrder = _error("InvalidPartOrder", 400, "The list of parts was not in ascending order.")
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long")
MalformedXML = _error(
    "MalformedXML", 400, "The XML you provided was not well-formed or did not validate."
)
MethodNotAllowed = _error(
    "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
)
MissingContentLength = _error(
    "MissingContentLength", 411, "You must provide the Content-Length HTTP header."
)
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _error(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may"
    " have been aborted or completed.",
)
NotImplemented_ = _error(
    "NotImplemented",
    501,
    "A header or operation you provided implies functionality that is not implemented.",
)
PreconditionFailed = _error(
    "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"
)
RequestTimeTooSkewed = _error(
    "RequestTimeTooSkewed",
    403,
    "The difference between the request time and the current time is too large.",
)
ServiceUnavailable = _error("ServiceUnavailable", 503, "Please reduce your request rate.")
SlowDown = _error("SlowDown", 503, "Please reduce your request rate.")
SignatureDoesNotMatch = _error(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided.",
)
XAmzContentSHA256Mismatch = _error(
    "XAmzContentSHA256Mismatch",
    400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)
RequestTimeout = _error(
    "RequestTimeout",
    400,
    "Your socket connection to the server was not read from or written to within the"
    " timeout period. Idle connections will be closed.",
)
# A full disk. AWS never runs out of room; MinIO answers 507 (its XMinioStorageFull) and
# relay keeps that status with the WebDAV name RFC 4918 gives it. Not 503 SlowDown: that
# tells a client to back off and retry soon, and SDKs do so automatically, but retrying a
# write cannot succeed until an operator (or garbage collection) frees space; 507 says
# exactly that, and deletes, which still work, are what frees it.
InsufficientStorage = _error(
    "InsufficientStorage",
    507,
    "There is not enough space left on the server's disk to store this write. Deleting"
    " objects (and garbage collection) frees space; retry after that.",
)
InvalidObjectState = _error(
    "InvalidObjectState", 403, "The operation is not valid for the object's state"
)

# Says what happened and names nothing behind relay (no upstream host, no bucket).
STORE_UNAVAILABLE_MESSAGE = "The storage behind this service is unavailable. Please try again."
# S3's own wording for its 503 ServiceUnavailable; names nothing behind relay.
REGISTRY_UNAVAILABLE_MESSAGE = "Service is unable to handle request."

BY_CODE: dict[str, type[S3Error]] = {cls.code: cls for cls in S3Error.__subclasses__()}
BY_CODE["InternalError"] = S3Error


def from_exception(exc: BaseException) -> S3Error:
    """Convert an error from a lower layer into the S3 error a client should see.

    Unknown errors become InternalError with a generic message: their text may hold paths
    or internals and is logged by the caller, never sent.
    """
    from relay import bucket as engine
    from relay.chunker import BodyTooLarge
    from relay.chunker.buffers import SlowUpload
    from relay.registry.base import RegistryUnavailable
    from relay.sigv4 import SigV4Error
    from relay.store.base import StoreError, StoreFull, StoreRefused, StoreUnavailable

    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, SigV4Error):
        return BY_CODE.get(exc.code, S3Error)(exc.message, **exc.extra)
    table: list[tuple[type[BaseException], Callable[[BaseException], S3Error]]] = [
        (engine.NoSuchBucket, lambda e: NoSuchBucket(BucketName=e.bucket)),  # type: ignore[attr-defined]
        (engine.NoSuchKey, lambda e: NoSuchKey(Key=e.key)),  # type: ignore[attr-defined]
        (engine.BucketNotEmpty, lambda e: BucketNotEmpty(BucketName=e.bucket)),  # type: ignore[attr-defined]
        (engine.InvalidKey, lambda e: KeyTooLongError(str(e))),
        (engine.InvalidRange, lambda e: InvalidRange()),
        (engine.PreconditionFailed, lambda e: PreconditionFailed()),
        (engine.CommitAborted, lambda e: ServiceUnavailable(str(e))),
        (engine.NoSuchUpload, lambda e: NoSuchUpload()),
        (engine.InvalidPart, lambda e: InvalidPart()),
        (engine.InvalidPartOrder, lambda e: InvalidPartOrder()),
        (engine.EntityTooSmall, lambda e: EntityTooSmall()),
        (BodyTooLarge, lambda e: EntityTooLarge()),
        # The upload stalled holding buffered bytes that moving uploads needed.
        (SlowUpload, lambda e: RequestTimeout()),
        # A storage node's refusal (piri: the delegation) is a configuration matter: named.
        (StoreRefused, lambda e: ServiceUnavailable(e.summary)),  # type: ignore[attr-defined]
        # An unreachable or failing upstream is transient: 503 tells clients to retry.
        (StoreUnavailable, lambda e: ServiceUnavailable(STORE_UNAVAILABLE_MESSAGE)),
        # Nothing of the write was kept; it can succeed once space is freed.
        (StoreFull, lambda e: InsufficientStorage()),
        (StoreError, lambda e: S3Error()),
        # The registry's database is down, restarting or unreachable: retryable.
        (RegistryUnavailable, lambda e: ServiceUnavailable(REGISTRY_UNAVAILABLE_MESSAGE)),
    ]
    for kind, convert in table:
        if isinstance(exc, kind):
            return convert(exc)
    if isinstance(exc, engine.BucketAlreadyExists):
        return BucketAlreadyOwnedByYou() if exc.owned_by_caller else BucketAlreadyExists()
    return S3Error()


NoSuchVersion = _error("NoSuchVersion", 404, "The specified version does not exist.")
InvalidTag = _error("InvalidTag", 400, "The tag provided was not a valid tag.")
InvalidPartNumber = _error("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
NoSuchTagSet = _error("NoSuchTagSet", 404, "The TagSet does not exist")
NoSuchBucketPolicy = _error("NoSuchBucketPolicy", 404, "The bucket policy does not exist")
NoSuchCORSConfiguration = _error(
    "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist"
)
NoSuchLifecycleConfiguration = _error(
    "NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist"
)
NoSuchWebsiteConfiguration = _error(
    "NoSuchWebsiteConfiguration", 404, "The specified bucket does not have a website configuration"
)
ServerSideEncryptionConfigurationNotFoundError = _error(
    "ServerSideEncryptionConfigurationNotFoundError",
    404,
    "The server side encryption configuration was not found",
)
NoSuchPublicAccessBlockConfiguration = _error(
    "NoSuchPublicAccessBlockConfiguration",
    404,
    "The public access block configuration was not found",
)
OwnershipControlsNotFoundError = _error(
    "OwnershipControlsNotFoundError", 404, "The bucket ownership controls were not found"
)
ObjectLockConfigurationNotFoundError = _error(
    "ObjectLockConfigurationNotFoundError",
    404,
    "Object Lock configuration does not exist for this bucket",
)
ReplicationConfigurationNotFoundError = _error(
    "ReplicationConfigurationNotFoundError", 404, "The replication configuration was not found"
)
NoSuchConfiguration = _error(
    "NoSuchConfiguration", 404, "The specified configuration does not exist."
)
InvalidStorageClass = _error(
    "InvalidStorageClass", 400, "The storage class you specified is not valid"
)
MalformedPolicy = _error("MalformedPolicy", 400, "Policies must be valid JSON.")
MalformedACLError = _error(
    "MalformedACLError",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema.",
)
AccessControlListNotSupported = _error(
    "AccessControlListNotSupported", 400, "The bucket does not allow ACLs"
)
MissingSecurityHeader = _error(
    "MissingSecurityHeader", 400, "Your request was missing a required header"
)
UnresolvableGrantByEmailAddress = _error(
    "UnresolvableGrantByEmailAddress",
    400,
    "The email address you provided does not match any account on record.",
)
MalformedTrailerError = _error(
    "MalformedTrailerError",
    400,
    "The request contained trailing data that was not well-formed or did not conform to our"
    " published schema.",
)
# CORS preflights and browser form uploads (presigned POST).
AccessForbidden = _error("AccessForbidden", 403, "CORSResponse: This CORS request is not allowed.")
BadRequest = _error("BadRequest", 400, "Bad Request")
MalformedPOSTRequest = _error(
    "MalformedPOSTRequest",
    400,
    "The body of your POST request is not well-formed multipart/form-data.",
)
MaxPostPreDataLengthExceededError = _error(
    "MaxPostPreDataLengthExceededError",
    400,
    "Your POST request fields preceeding the upload file was too large.",
)
InvalidPolicyDocument = _error(
    "InvalidPolicyDocument",
    400,
    "The content of the form does not meet the conditions specified in the policy document.",
)
BY_CODE.update({cls.code: cls for cls in S3Error.__subclasses__()})
