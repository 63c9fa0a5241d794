"""The ``any_store`` fixture: every contract test runs against each BlobStore backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store.base import BlobStore
from relay.store.disk import open_disk_store
from relay.store.memory import MemoryBlobStore


@pytest.fixture(params=["memory", "disk"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "memory":
        store = MemoryBlobStore()
        yield store
        await store.aclose()
    else:
        async with open_disk_store(tmp_path / "store") as disk_store:
            yield disk_store
