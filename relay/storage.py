"""Open relay's storage from a ``Config``: the blob store, the registry and the engine.

The registry (``registry.url``: SQLite in the data directory, or PostgreSQL) opens first:
the ``s3`` and ``piri`` blob stores record a location claim in it for every blob they
store (``on_stored``), so the registry must outlive the store.

relay's own identity (an ed25519 key, its did:key is what piri delegates to) lives in
``key_file`` (``relay.pem`` in the data directory unless configured): PKCS#8 PEM, mode
0600, generated on first use. Creation is atomic (written aside, then hard-linked into
place), so two processes starting together agree on one key.

The piri store and the UCAN stack (with ``cryptography``) are imported only when a piri
store or relay's key is asked for: a disk-store server does not carry them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from relay.bucket import Engine, open_engine
from relay.config import Config, ConfigError
from relay.registry import open_sqlite_registry
from relay.registry.base import Claim, Registry
from relay.store import BlobStore, MemoryBlobStore
from relay.store.base import StoredBlob
from relay.store.disk import open_disk_store
from relay.store.s3 import open_s3_store

if TYPE_CHECKING:
    from relay.ucan import ByteRange, Signer

RELAY_KEY_FILE: Final = "relay.pem"


def key_path(config: Config) -> Path:
    """Where relay's key is: ``store.piri.key_file``, inside ``data_dir`` if relative."""
    name = Path(config.store.piri.key_file if config.store.piri else RELAY_KEY_FILE)
    return name if name.is_absolute() else config.data_dir / name


def load_or_create_key(path: Path) -> Signer:
    """The ed25519 key in ``path``, generated there (mode 0600) when absent."""
    from relay.ucan import Signer

    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.new")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(Signer.generate().to_pem())
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        aside.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> Signer:
    from relay.ucan import MalformedUcan, Signer

    data = path.read_bytes()
    try:
        return Signer.from_pem(data)
    except MalformedUcan as exc:
        raise ConfigError(f"relay's key file {path} is not an ed25519 PEM key: {exc}") from None


def relay_signer(config: Config) -> Signer:
    """relay's own signer (see the module docstring)."""
    return load_or_create_key(key_path(config))


@asynccontextmanager
async def open_registry(config: Config) -> AsyncIterator[Registry]:
    """The registry ``registry.url`` names: PostgreSQL for a ``postgresql://`` URL (psycopg
    is imported only then), else the SQLite file in ``data_dir``."""
    if config.registry.is_postgres:
        from relay.registry.postgres import open_postgres_registry

        async with open_postgres_registry(config.registry) as shared:
            yield shared
        return
    async with open_sqlite_registry(config.data_dir / "registry.sqlite") as registry:
        yield registry


@asynccontextmanager
async def open_blob_store(
    config: Config, registry: Registry | None = None
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

        async def forget_claims(mh: bytes) -> None:
            assert registry is not None
            await registry.forget_blobs([mh])

        on_stored = record_claim if registry is not None else None
        on_deleted = forget_claims if registry is not None else None
        async with open_s3_store(config.store.s3, on_stored=on_stored, on_deleted=on_deleted) as s3:
            yield s3
        return
    if config.store.kind == "piri":
        async with AsyncExitStack() as stack:
            yield await _open_piri(config, registry, stack)
        return
    async with open_disk_store(
        config.data_dir / "blobs",
        pack_size_limit_bytes=config.store.pack_size_limit_bytes,
        reserve_bytes=config.store.reserve_bytes,
        compact_live_fraction=config.store.compact_live_fraction,
    ) as disk:
        yield disk


async def _open_piri(config: Config, registry: Registry | None, stack: AsyncExitStack) -> BlobStore:
    from relay.store.piri import open_piri_store

    piri = config.store.piri
    assert piri is not None  # load_config sets it for kind "piri"
    signer = await trio.to_thread.run_sync(relay_signer, config)
    delegation = piri.delegation
    if piri.delegation_file is not None:
        try:
            delegation = await trio.Path(piri.delegation_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read store.piri.delegation_file: {exc}") from None
    if not delegation:
        raise ConfigError(
            "store kind piri needs store.piri.delegation or delegation_file"
            " (RELAY_PIRI_DELEGATION, RELAY_PIRI_DELEGATION_FILE): on the piri node run"
            f" `piri delegate generate --client-did {signer.did}`"
        )

    async def record_claim(mh: bytes, urls: Sequence[str], span: ByteRange | None) -> None:
        assert registry is not None
        offset, length = (span.offset, span.length) if span is not None else (None, None)
        await registry.add_claims([Claim(mh, url, offset, length) for url in urls])

    async def list_recorded() -> AsyncIterator[StoredBlob]:
        # What relay recorded storing on piri: the blobs its claims name (piri cannot
        # list them). Their age is unknown (0: old); see relay.store.piri.
        assert registry is not None
        after = (b"", "")
        previous = b""
        while page := await registry.all_claims(after=after, limit=10_000):
            for claim in page:
                if claim.content != previous:
                    previous = claim.content
                    yield StoredBlob(claim.content, 0, 0)
            after = (page[-1].content, page[-1].url)

    on_stored = record_claim if registry is not None else None
    opened = open_piri_store(
        replace(piri, delegation=delegation),
        signer=signer,
        on_stored=on_stored,
        list_recorded=list_recorded if registry is not None else None,
    )
    try:
        return await stack.enter_async_context(opened)
    except ValueError as exc:  # a malformed delegation (MalformedUcan) too
        raise ConfigError(f"[store.piri]: {exc}") from None


@asynccontextmanager
async def open_storage(
    config: Config, *, wrap_store: Callable[[BlobStore], BlobStore] | None = None
) -> AsyncIterator[Engine]:
    """The engine over the configured store and the registry in ``data_dir``.
    ``wrap_store`` may stand something in front of the store (the server's metrics)."""
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(open_registry(config))
        store = await stack.enter_async_context(open_blob_store(config, registry))
        if wrap_store is not None:
            store = wrap_store(store)
        yield await stack.enter_async_context(open_engine(store, registry, config.engine))
