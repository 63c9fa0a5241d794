"""Blob stores: where chunk and CAR bytes live, behind one small contract (see ``base``)."""

from relay.store.base import BlobNotFound, BlobStore, CorruptBlob, StoreError, StoreStatistics
from relay.store.disk import DiskBlobStore, DiskStoreStatistics, open_disk_store
from relay.store.memory import MemoryBlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "CorruptBlob",
    "DiskBlobStore",
    "DiskStoreStatistics",
    "MemoryBlobStore",
    "StoreError",
    "StoreStatistics",
    "open_disk_store",
]
