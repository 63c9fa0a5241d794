"""Bucket roots, commit history, block locations, multipart state, location claims."""

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
    RegistryError,
    UploadMissing,
    UploadRecord,
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
    "RegistryError",
    "SqliteRegistry",
    "UploadMissing",
    "UploadRecord",
    "open_sqlite_registry",
]
