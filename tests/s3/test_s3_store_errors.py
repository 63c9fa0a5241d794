"""How the blob store's own errors reach a client."""

from __future__ import annotations

from relay.s3.errors import from_exception
from relay.store.base import StoreFull


def test_a_full_disk_is_507_insufficient_storage_naming_the_cause_not_the_path() -> None:
    error = from_exception(StoreFull("the disk holding /secret/relay-data/blobs is full"))
    assert (error.code, error.status) == ("InsufficientStorage", 507)
    assert "space" in error.message
    assert "/secret" not in error.message
