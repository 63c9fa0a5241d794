"""The ``any_store`` fixture: every contract test runs against each BlobStore backend.

The ``s3`` backend runs against moto's standalone server (one per test session, see
``tests/moto_upstream.py``), each test in a fresh upstream bucket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from moto_upstream import MotoServer, moto_or_skip, stop_moto

from relay.store.base import BlobStore
from relay.store.disk import open_disk_store
from relay.store.memory import MemoryBlobStore
from relay.store.s3 import open_s3_store


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = moto_or_skip(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server.process)


@pytest.fixture(params=["memory", "disk", "s3"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "memory":
        store = MemoryBlobStore()
        yield store
        await store.aclose()
    elif request.param == "disk":
        async with open_disk_store(tmp_path / "store") as disk_store:
            yield disk_store
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        async with open_s3_store(moto.store_config(moto.new_bucket())) as s3_store:
            yield s3_store
