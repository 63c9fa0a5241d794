"""The bucket writer acknowledges a mutation only once its effect is committed."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from bucket_helpers import body_of

from relay.bucket.engine import open_engine
from relay.bucket.errors import CommitAborted, NoSuchKey
from relay.registry import open_sqlite_registry
from relay.store import MemoryBlobStore


class GatedFailingSyncStore(MemoryBlobStore):
    """A store whose next sync waits for ``release`` and then fails (a disk gone bad)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.syncing = trio.Event()
        self.release = trio.Event()

    async def sync(self) -> None:
        if self.armed:
            self.armed = False
            self.syncing.set()
            await self.release.wait()
            raise OSError("I/O error")
        await super().sync()


async def test_a_no_op_on_top_of_a_failed_commit_is_not_acknowledged(tmp_path: Path) -> None:
    """Delete k (batch N, its commit fails) and, while N commits, delete k again (batch
    N+1, applied on N's head where k is gone: "nothing changes"). N+1 must not be
    acknowledged as a no-op while k is still there: it is rebased on the committed root
    (where k exists) and commits a real delete."""
    store = GatedFailingSyncStore()
    async with (
        open_sqlite_registry(tmp_path / "registry.sqlite") as registry,
        open_engine(store, registry) as engine,
    ):
        await engine.create_bucket("b")
        await engine.put_object("b", "k", body_of(b"kept"))
        store.armed = True
        outcomes: dict[str, BaseException | None] = {}

        async def delete(name: str) -> None:
            try:
                await engine.delete_object("b", "k")
                outcomes[name] = None
            except (OSError, CommitAborted) as exc:
                outcomes[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(delete, "first")
            await store.syncing.wait()
            nursery.start_soon(delete, "second")
            await trio.testing.wait_all_tasks_blocked()
            store.release.set()

        assert isinstance(outcomes["first"], OSError)
        assert outcomes["second"] is None
        assert (await engine.list_objects("b")).entries == []
        with pytest.raises(NoSuchKey):
            await engine.read_object("b", "k")
