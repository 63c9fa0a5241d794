"""Bucket roots, commit history, block locations, multipart state, location claims.

``Registry`` (``base``) is what relay asks of one; ``SqliteRegistry`` is the embedded one.
Callers type against ``Registry``, so another database can stand behind it.
"""

from relay.registry.base import (
    BlockLocation,
    BucketExists,
    BucketMissing,
    BucketRecord,
    Claim,
    CommitConflict,
    CommitRecord,
    CompletedUploadRecord,
    PartRecord,
    PinRecord,
    Reach,
    Registry,
    RegistryError,
    UploadMissing,
    UploadRecord,
    now_ms,
)
from relay.registry.sqlite import SqliteRegistry, open_sqlite_registry

__all__ = [
    "BlockLocation",
    "BucketExists",
    "BucketMissing",
    "BucketRecord",
    "Claim",
    "CommitConflict",
    "CommitRecord",
    "CompletedUploadRecord",
    "PartRecord",
    "PinRecord",
    "Reach",
    "Registry",
    "RegistryError",
    "SqliteRegistry",
    "UploadMissing",
    "UploadRecord",
    "now_ms",
    "open_sqlite_registry",
]
