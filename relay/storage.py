"""Open relay's storage from a ``Config``: the blob store, the registry and the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from relay.bucket.engine import Engine, open_engine
from relay.config import Config
from relay.registry import open_sqlite_registry
from relay.store import BlobStore, MemoryBlobStore
from relay.store.disk import open_disk_store


@asynccontextmanager
async def open_blob_store(config: Config) -> AsyncIterator[BlobStore]:
    if config.store.kind == "memory":
        store = MemoryBlobStore()
        try:
            yield store
        finally:
            await store.aclose()
        return
    async with open_disk_store(
        config.data_dir / "blobs", pack_size_limit_bytes=config.store.pack_size_limit_bytes
    ) as disk:
        yield disk


@asynccontextmanager
async def open_storage(config: Config) -> AsyncIterator[Engine]:
    """The engine over the configured store and the registry in ``data_dir``."""
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_blob_store(config))
        registry = await stack.enter_async_context(
            open_sqlite_registry(config.data_dir / "registry.sqlite")
        )
        yield await stack.enter_async_context(open_engine(store, registry, config.engine))
