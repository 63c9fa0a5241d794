"""Blob stores: where chunk and CAR bytes live, behind one small contract (see ``base``).

The piri store is not imported here: it loads the UCAN stack, which only a piri-backed
server needs (``relay.storage`` imports it when it opens one).
"""

from relay.store.base import (
    BlobNotFound,
    BlobStore,
    CorruptBlob,
    StoreError,
    StoreFull,
    StoreRefused,
    StoreStatistics,
    StoreUnavailable,
)
from relay.store.disk import DiskBlobStore, DiskStoreStatistics, open_disk_store
from relay.store.memory import MemoryBlobStore
from relay.store.piri_config import PiriStoreConfig
from relay.store.s3 import S3BlobStore, S3StoreConfig, open_s3_store

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "CorruptBlob",
    "DiskBlobStore",
    "DiskStoreStatistics",
    "MemoryBlobStore",
    "PiriStoreConfig",
    "S3BlobStore",
    "S3StoreConfig",
    "StoreError",
    "StoreFull",
    "StoreRefused",
    "StoreStatistics",
    "StoreUnavailable",
    "open_disk_store",
    "open_s3_store",
]
