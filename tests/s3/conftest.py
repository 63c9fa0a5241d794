"""What the S3 layer's tests share: an engine over the memory store and a SQLite registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.bucket.engine import Engine, open_engine
from relay.registry import open_sqlite_registry
from relay.store import MemoryBlobStore


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with (
        open_sqlite_registry(tmp_path / "r.sqlite") as registry,
        open_engine(MemoryBlobStore(), registry) as engine,
    ):
        yield engine
