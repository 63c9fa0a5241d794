"""UCAN 0.9.1 over the ucanto transport: what relay needs to store blobs on a piri node.

Pure code: no I/O, no clock (callers pass expirations), no trio. The piri blob store
builds invocations here, posts ``agent_message(...)`` with ``REQUEST_HEADERS``, and reads
the answer back with ``check_http_response`` and ``read_receipt``.

- keys: ed25519 ``Signer`` / ``Verifier``, did:key, varsig.
- ucan: UCAN blocks (dag-cbor) and their JWT-style signing input (dag-json).
- receipt: decoding, checking and issuing receipts; errors become ``UcantoError``.
- transport: the agent-message CARs, both directions.
- delegation: piri's printed ``m…`` delegations.
- blob: ``blob/allocate``, ``http/put``, ``blob/accept`` and the location claim.
"""

from relay.ucan.blob import (
    Address,
    Allocation,
    ByteRange,
    LocationClaim,
    accepted_location,
    allocation,
    blob_accept,
    blob_allocate,
    decode_location_claim,
    http_put,
    location_claim,
    put_signer,
)
from relay.ucan.delegation import (
    Delegation,
    delegation_from_archive,
    format_delegation,
    parse_delegation,
)
from relay.ucan.errors import (
    BadSignature,
    Expired,
    HandlerNotFound,
    MalformedUcan,
    MissingReceipt,
    ReceiptRejected,
    TransportError,
    UcanError,
    UcantoError,
    Unauthorized,
    UnsupportedMediaType,
    WrongInvocation,
    WrongIssuer,
    ucanto_error,
)
from relay.ucan.keys import Signer, Verifier, did_from_bytes, did_to_bytes, parse_did_key
from relay.ucan.receipt import Effects, Receipt, decode_receipt, issue_receipt
from relay.ucan.transport import (
    CAR_MEDIA_TYPE,
    REQUEST_HEADERS,
    AgentMessage,
    agent_message,
    agent_response,
    check_http_response,
    parse_agent_message,
    parse_agent_response,
    read_receipt,
)
from relay.ucan.ucan import Capability, Ucan, decode_ucan, invocation, issue, signing_input

__all__ = [
    "CAR_MEDIA_TYPE",
    "REQUEST_HEADERS",
    "Address",
    "AgentMessage",
    "Allocation",
    "BadSignature",
    "ByteRange",
    "Capability",
    "Delegation",
    "Effects",
    "Expired",
    "HandlerNotFound",
    "LocationClaim",
    "MalformedUcan",
    "MissingReceipt",
    "Receipt",
    "ReceiptRejected",
    "Signer",
    "TransportError",
    "Ucan",
    "UcanError",
    "UcantoError",
    "Unauthorized",
    "UnsupportedMediaType",
    "Verifier",
    "WrongInvocation",
    "WrongIssuer",
    "accepted_location",
    "agent_message",
    "agent_response",
    "allocation",
    "blob_accept",
    "blob_allocate",
    "check_http_response",
    "decode_location_claim",
    "decode_receipt",
    "decode_ucan",
    "delegation_from_archive",
    "did_from_bytes",
    "did_to_bytes",
    "format_delegation",
    "http_put",
    "invocation",
    "issue",
    "issue_receipt",
    "location_claim",
    "parse_agent_message",
    "parse_agent_response",
    "parse_delegation",
    "parse_did_key",
    "put_signer",
    "read_receipt",
    "signing_input",
    "ucanto_error",
]
