"""Bucket roots, commit history, block locations, multipart state, location claims.

``Registry`` (``base``) is what relay asks of one; ``SqliteRegistry`` is the embedded one,
``relay.registry.postgres.PostgresRegistry`` the one many hosts share (imported from its
module, so that psycopg is loaded only where a PostgreSQL URL is configured). Callers type
against ``Registry``.
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
    RegistryUnavailable,
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
    "RegistryUnavailable",
    "SqliteRegistry",
    "UploadMissing",
    "UploadRecord",
    "now_ms",
    "open_sqlite_registry",
]
