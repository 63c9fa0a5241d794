"""Open relay's storage from a ``Config``: the blob store, the registry and the engine.

The registry opens first: the ``s3`` blob store records a location claim in it for every
blob it uploads (``on_stored``), so the registry must outlive the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from relay.bucket.engine import Engine, open_engine
from relay.config import Config
from relay.registry import open_sqlite_registry
from relay.registry.base import Claim
from relay.registry.sqlite import SqliteRegistry
from relay.store import BlobStore, MemoryBlobStore
from relay.store.disk import open_disk_store
from relay.store.s3 import open_s3_store


@asynccontextmanager
async def open_registry(config: Config) -> AsyncIterator[SqliteRegistry]:
    async with open_sqlite_registry(config.data_dir / "registry.sqlite") as registry:
        yield registry


@asynccontextmanager
async def open_blob_store(
    config: Config, registry: SqliteRegistry | None = None
) -> AsyncIterator[BlobStore]:
    """The configured store. With ``registry``, an ``s3`` store claims what it uploads."""
    if config.store.kind == "memory":
        store = MemoryBlobStore()
        try:
            yield store
        finally:
            await store.aclose()
        return
    if config.store.kind == "s3":
        assert config.store.s3 is not None  # load_config sets it for kind "s3"

        async def record_claim(mh: bytes, url: str) -> None:
            assert registry is not None
            await registry.add_claims([Claim(mh, url)])

        on_stored = record_claim if registry is not None else None
        async with open_s3_store(config.store.s3, on_stored=on_stored) as s3:
            yield s3
        return
    async with open_disk_store(
        config.data_dir / "blobs", pack_size_limit_bytes=config.store.pack_size_limit_bytes
    ) as disk:
        yield disk


@asynccontextmanager
async def open_storage(config: Config) -> AsyncIterator[Engine]:
    """The engine over the configured store and the registry in ``data_dir``."""
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(open_registry(config))
        store = await stack.enter_async_context(open_blob_store(config, registry))
        yield await stack.enter_async_context(open_engine(store, registry, config.engine))
