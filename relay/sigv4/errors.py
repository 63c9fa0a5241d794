"""SigV4's own errors, one class per S3 error code; the S3 layer renders them.

Each class carries the S3 ``code`` and HTTP ``status`` at class level. Messages say what
was wrong with the request and never contain a secret, a signing key or the signature the
server computed (a wrong-signature answer must not teach a forger the right one).
``SignatureDoesNotMatch`` may carry the canonical request and string to sign as attributes
(S3 returns them to help a client debug its signer; neither depends on the secret).
"""

from __future__ import annotations


class SigV4Error(Exception):
    """Base of every authentication and aws-chunked framing failure."""

    code: str = "AccessDenied"
    status: int = 403

    def __init__(self, message: str, **extra: str) -> None:
        super().__init__(message)
        self.message = message
        # More elements for the S3 error document (``Region`` for a wrong region, which
        # SDKs read to re-sign for the right one, as they do against AWS).
        self.extra = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class AccessDenied(SigV4Error):
    """Anonymous request, expired presigned URL, missing or unusable date, unsigned x-amz-*."""

    code = "AccessDenied"
    status = 403


class InvalidAccessKeyId(SigV4Error):
    code = "InvalidAccessKeyId"
    status = 403


class SignatureDoesNotMatch(SigV4Error):
    code = "SignatureDoesNotMatch"
    status = 403

    def __init__(
        self,
        message: str,
        *,
        canonical_request: str = "",
        string_to_sign: str = "",
        access_key: str = "",
    ) -> None:
        # The error document carries what S3's does, so a client can compare its signer's
        # strings with the server's: the key id, the string to sign (and its bytes in
        # hex), and for SigV4 the canonical request. Not the signature either side made.
        extra = {"AWSAccessKeyId": access_key} if access_key else {}
        for name, text in (
            ("StringToSign", string_to_sign),
            ("CanonicalRequest", canonical_request),
        ):
            if text:
                raw = text.encode("utf-8", "surrogateescape")
                extra[name] = raw.decode("utf-8", "replace")
                extra[f"{name}Bytes"] = " ".join(f"{byte:02x}" for byte in raw)
        super().__init__(message, **extra)
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign


class RequestTimeTooSkewed(SigV4Error):
    code = "RequestTimeTooSkewed"
    status = 403


class AuthorizationHeaderMalformed(SigV4Error):
    code = "AuthorizationHeaderMalformed"
    status = 400


class AuthorizationQueryParametersError(SigV4Error):
    code = "AuthorizationQueryParametersError"
    status = 400


class InvalidRequest(SigV4Error):
    """An authentication mechanism S3 does not accept here (SigV2, no payload hash...)."""

    code = "InvalidRequest"
    status = 400


class InvalidArgument(SigV4Error):
    code = "InvalidArgument"
    status = 400


class MalformedChunkedBody(InvalidRequest):
    """The aws-chunked framing is broken (bad size line, missing CRLF, stray bytes)."""


class IncompleteBody(SigV4Error):
    """The body ended before its final chunk, or disagrees with its declared length."""

    code = "IncompleteBody"
    status = 400


class MalformedTrailerError(SigV4Error):
    """The trailers are not the ones ``x-amz-trailer`` declared: one is missing, one was
    not declared, or one came in a mode that carries none (S3 answers the same code)."""

    code = "MalformedTrailerError"
    status = 400
