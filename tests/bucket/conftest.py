from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.bucket.engine import Engine, EngineConfig, open_engine
from relay.chunker import ChunkerConfig
from relay.registry import open_sqlite_registry
from relay.store import MemoryBlobStore

SMALL_CHUNKS = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=16 << 10), unixfs_width=4)


@pytest.fixture
def store() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
async def engine(tmp_path: Path, store: MemoryBlobStore) -> AsyncIterator[Engine]:
    async with (
        open_sqlite_registry(tmp_path / "registry.sqlite") as registry,
        open_engine(store, registry, SMALL_CHUNKS) as engine,
    ):
        yield engine
