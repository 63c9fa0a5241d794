"""Blob stores: where chunk and CAR bytes live, behind one small contract (see ``base``)."""

from relay.store.base import BlobNotFound, BlobStore, CorruptBlob, StoreError, StoreStatistics
from relay.store.disk import DiskBlobStore, DiskStoreStatistics, open_disk_store
from relay.store.memory import MemoryBlobStore
from relay.store.piri import PiriBlobStore, PiriRefused, PiriStoreConfig, open_piri_store
from relay.store.s3 import S3BlobStore, S3StoreConfig, open_s3_store

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "CorruptBlob",
    "DiskBlobStore",
    "DiskStoreStatistics",
    "MemoryBlobStore",
    "PiriBlobStore",
    "PiriRefused",
    "PiriStoreConfig",
    "S3BlobStore",
    "S3StoreConfig",
    "StoreError",
    "StoreStatistics",
    "open_disk_store",
    "open_piri_store",
    "open_s3_store",
]
