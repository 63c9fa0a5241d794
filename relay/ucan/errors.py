"""What can go wrong talking UCAN to a ucanto service, as exception types.

Four families, because a caller reacts to each differently:

- ``MalformedUcan``: bytes or text that are not what the protocol says (a bad DID, a UCAN
  block missing a field, a response CAR without a message root). A bug or a hostile peer.
- ``ReceiptRejected``: a well-formed receipt we must not believe (it answers another
  invocation, someone else issued it, its signature does not verify, it is missing).
- ``UcantoError``: a receipt we believe, whose ``out`` is an error: the service refused.
  ``name`` and ``message`` are the service's own; subclasses name the refusals seen from
  piri so callers can ``except Unauthorized``.
- ``TransportError``: the HTTP exchange itself failed before any receipt (415, 5xx).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class UcanError(Exception):
    """Base of every error relay.ucan raises."""


class MalformedUcan(UcanError, ValueError):
    """Bytes or text that do not have the shape the UCAN / ucanto wire format requires."""


class ReceiptRejected(UcanError):
    """A receipt that must not be trusted."""


class MissingReceipt(ReceiptRejected):
    """The response carries no receipt for the invocation we sent."""


class WrongInvocation(ReceiptRejected):
    """The receipt's ``ran`` is not the invocation it was reported for (or expected)."""


class WrongIssuer(ReceiptRejected):
    """The receipt was issued by someone other than the service we invoked."""


class BadSignature(ReceiptRejected):
    """A signature that does not verify against the issuer's key."""


class UcantoError(UcanError):
    """The service ran the invocation and answered with an error.

    ``name`` is the error's ``name`` field (``"Unauthorized"``, ``"HandlerNotFound"``…),
    ``message`` its human text, ``detail`` the whole error map as received.
    """

    error_name: ClassVar[str] = ""

    def __init__(self, name: str, message: str, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name
        self.message = message
        self.detail: Mapping[str, Any] = detail if detail is not None else {}


class Unauthorized(UcantoError):
    """The invocation's proofs do not grant the capability (no or wrong delegation)."""

    error_name = "Unauthorized"


class Expired(UcantoError):
    """The invocation or a proof in its chain has expired by the service's clock."""

    error_name = "Expired"


class HandlerNotFound(UcantoError):
    """The service does not implement the invoked ability."""

    error_name = "HandlerNotFound"


_BY_NAME: dict[str, type[UcantoError]] = {
    cls.error_name: cls for cls in (Unauthorized, Expired, HandlerNotFound)
}


def ucanto_error(error: Any) -> UcantoError:
    """The exception for a receipt's ``out.error`` value (any shape: it never fails)."""
    if not isinstance(error, Mapping):
        return UcantoError("UnknownError", repr(error), {})
    name = error.get("name")
    message = error.get("message")
    name = name if isinstance(name, str) and name else "UnknownError"
    message = message if isinstance(message, str) else ""
    return _BY_NAME.get(name, UcantoError)(name, message, error)


class TransportError(UcanError):
    """The HTTP response is not a ucanto answer (wrong status or content type)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.message = message


class UnsupportedMediaType(TransportError):
    """415: the service did not accept the request's content type."""
