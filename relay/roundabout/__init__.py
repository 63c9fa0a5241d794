"""Roundabout: answer a CID with a 302 to a URL holding its bytes (DESIGN §6).

``matching`` reads claim URLs (pure), ``signing`` presigns GETs (pure), ``config`` reads
the ``[roundabout]`` table (pure) and ``relay.roundabout.app`` is the HTTP handler
(imported on its own: it pulls in the HTTP layer).
"""

from relay.roundabout.config import (
    ContentScope,
    Grant,
    RoundaboutConfig,
    RoundaboutConfigError,
    parse_roundabout,
)
from relay.roundabout.matching import (
    CustomDomain,
    Endpoint,
    ObjectLocation,
    Service,
    SigningBucket,
    find_signer,
    parse_endpoint,
    parse_url,
    redirectable_as_is,
)
from relay.roundabout.signing import DEFAULT_EXPIRES_SECONDS, MAX_EXPIRES_SECONDS, presigned_get

__all__ = [
    "DEFAULT_EXPIRES_SECONDS",
    "MAX_EXPIRES_SECONDS",
    "ContentScope",
    "CustomDomain",
    "Endpoint",
    "Grant",
    "ObjectLocation",
    "RoundaboutConfig",
    "RoundaboutConfigError",
    "Service",
    "SigningBucket",
    "find_signer",
    "parse_endpoint",
    "parse_roundabout",
    "parse_url",
    "presigned_get",
    "redirectable_as_is",
]
