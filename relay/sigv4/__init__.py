"""S3's signatures: verifying requests, decoding aws-chunked bodies, signing and presigning.

One implementation shared by the S3 front door (``authenticate``, ``AwsChunkedDecoder``),
the S3-upstream blob store (``sign_headers``) and roundabout (``presign_url``). SigV4 is
``verify``; the legacy SigV2 is ``relay.sigv4.v2`` (its ``signature`` also signs SigV2
POST policies); ``authenticate`` picks whichever a request carries. Pure code: no I/O, no
clock; callers pass ``now``.
"""

from relay.sigv4.authenticate import authenticate, claimed_access_key
from relay.sigv4.canonical import (
    EMPTY_SHA256,
    STREAMING_SIGNED_PAYLOAD,
    STREAMING_SIGNED_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    quote_path,
)
from relay.sigv4.chunked import END, NEED_DATA, AwsChunkedDecoder, ChunkData, Event, Trailers
from relay.sigv4.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    IncompleteBody,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    MalformedChunkedBody,
    MalformedTrailerError,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SigV4Error,
)
from relay.sigv4.sign import presign_url, sign_headers
from relay.sigv4.verify import (
    Authorization,
    VerifiedRequest,
    parse_authorization,
    verify,
)

__all__ = [
    "EMPTY_SHA256",
    "END",
    "NEED_DATA",
    "STREAMING_SIGNED_PAYLOAD",
    "STREAMING_SIGNED_PAYLOAD_TRAILER",
    "STREAMING_UNSIGNED_PAYLOAD_TRAILER",
    "UNSIGNED_PAYLOAD",
    "AccessDenied",
    "Authorization",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "AwsChunkedDecoder",
    "ChunkData",
    "Event",
    "IncompleteBody",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidRequest",
    "MalformedChunkedBody",
    "MalformedTrailerError",
    "RequestTimeTooSkewed",
    "SigV4Error",
    "SignatureDoesNotMatch",
    "Trailers",
    "VerifiedRequest",
    "authenticate",
    "claimed_access_key",
    "parse_authorization",
    "presign_url",
    "quote_path",
    "sign_headers",
    "verify",
]
