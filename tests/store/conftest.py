"""The ``any_store`` fixture: every contract test runs against each BlobStore backend.
``damageable_store`` is the same but for piri, whose stored bytes live inside the fake
node: the healing tests damage a store's bytes behind its back, which for piri
``test_piri_store`` does against the fake node itself.

The ``s3`` backend runs against moto's standalone server (one per test session, see
``tests/moto_upstream.py``), each test in a fresh upstream bucket; the ``piri`` backend
against a fake piri node on loopback (``tests/piri_fake.py``), one per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from moto_upstream import MotoServer, moto_or_skip, stop_moto
from piri_fake import piri_delegation, piri_store_config, running_fake_piri

from relay.store.base import BlobStore
from relay.store.disk import open_disk_store
from relay.store.memory import MemoryBlobStore
from relay.store.piri import open_piri_store
from relay.store.s3 import open_s3_store
from relay.ucan import Signer


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = moto_or_skip(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server.process)


@pytest.fixture(params=["memory", "disk", "s3", "piri"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    async with _open_store(request.param, request, tmp_path) as store:
        yield store


@pytest.fixture(params=["memory", "disk", "s3"])
async def damageable_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BlobStore]:
    async with _open_store(request.param, request, tmp_path) as store:
        yield store


@asynccontextmanager
async def _open_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BlobStore]:
    if kind == "memory":
        store = MemoryBlobStore()
        yield store
        await store.aclose()
    elif kind == "disk":
        async with open_disk_store(tmp_path / "store") as disk_store:
            yield disk_store
    elif kind == "piri":
        relay_key = Signer.generate()
        async with running_fake_piri() as fake:
            config = piri_store_config(
                fake.url, fake.did, piri_delegation(fake.signer, relay_key.did)
            )
            async with open_piri_store(config, signer=relay_key) as piri_store:
                yield piri_store
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        async with open_s3_store(moto.store_config(moto.new_bucket())) as s3_store:
            yield s3_store
