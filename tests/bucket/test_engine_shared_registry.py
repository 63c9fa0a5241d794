"""Several engines over one registry and one blob store: what several relay processes (or
hosts) sharing a registry see. Each engine has its own writer per bucket, its own caches
and its own registry connections, exactly as a separate process would; the registry's
compare-and-swap is the only thing that orders their commits."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
from bucket_helpers import body_of

from relay.bucket.engine import Engine, EngineConfig, open_engine
from relay.bucket.errors import NoSuchBucket, NoSuchKey, PreconditionFailed
from relay.bucket.manifest import Manifest
from relay.registry import open_sqlite_registry
from relay.store import MemoryBlobStore


@asynccontextmanager
async def engines(tmp_path: Path, count: int = 2) -> AsyncIterator[list[Engine]]:
    store = MemoryBlobStore()  # shared, as an s3 or piri store is across hosts
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(count):
            registry = await stack.enter_async_context(
                open_sqlite_registry(tmp_path / "registry.sqlite")
            )
            opened.append(
                await stack.enter_async_context(
                    open_engine(store, registry, EngineConfig(max_batch=8))
                )
            )
        yield opened


def absent(current: Manifest | None) -> None:
    if current is not None:
        raise PreconditionFailed("the key exists")


async def test_writes_from_every_engine_to_one_bucket_all_commit_in_one_line(
    tmp_path: Path,
) -> None:
    async with engines(tmp_path, 3) as (a, b, c):
        await a.create_bucket("shared")
        written: dict[str, bytes] = {}

        async def writer(engine: Engine, name: str) -> None:
            for n in range(12):
                key = f"{name}-{n % 5}"  # overwrite keys too
                data = f"{name} {n}".encode()
                await engine.put_object("shared", key, body_of(data))
                written[key] = data
                await trio.sleep(random.random() / 1000)

        async with trio.open_nursery() as nursery:
            for engine, name in ((a, "a"), (b, "b"), (c, "c")):
                nursery.start_soon(writer, engine, name)

        for engine in (a, b, c):  # read-after-write on every engine, not only the writer
            listed = (await engine.list_objects("shared")).entries
            assert sorted(entry.key for entry in listed) == sorted(written)
            for key, data in written.items():
                assert await engine.read_object("shared", key) == data
        log = await a.bucket_log("shared")
        versions = sorted(record.version for record in log)
        assert versions == list(range(len(versions)))  # one line: 0..N, no gap, no fork
        totals = [engine.statistics() for engine in (a, b, c)]
        assert sum(t.commit_mutations for t in totals) == 36
        # The three writers did collide: some batch was applied again on a newer root.
        assert sum(t.commit_rebases for t in totals) > 0


async def test_racing_if_none_match_from_two_engines_has_exactly_one_winner(
    tmp_path: Path,
) -> None:
    async with engines(tmp_path, 2) as (a, b):
        await a.create_bucket("race")
        for round_ in range(15):
            key = f"k{round_}"
            winners: list[str] = []

            async def create(
                engine: Engine, name: str, key: str = key, winners: list[str] = winners
            ) -> None:
                try:
                    body = body_of(name.encode())
                    await engine.put_object("race", key, body, precondition=absent)
                    winners.append(name)
                except PreconditionFailed:
                    pass

            async with trio.open_nursery() as nursery:
                for engine, name in ((a, "a"), (b, "b"), (a, "a2"), (b, "b2")):
                    nursery.start_soon(create, engine, name)
            assert len(winners) == 1, winners
            for engine in (a, b):
                assert await engine.read_object("race", key) == winners[0].encode()


async def test_a_read_on_one_engine_sees_a_write_acknowledged_by_another(tmp_path: Path) -> None:
    async with engines(tmp_path, 2) as (a, b):
        await a.create_bucket("raw")
        await b.head_bucket("raw")  # b has the bucket's (empty) root cached
        for n in range(10):
            await a.put_object("raw", "k", body_of(f"v{n}".encode()))
            assert await b.read_object("raw", "k") == f"v{n}".encode()
            assert [e.key for e in (await b.list_objects("raw")).entries] == ["k"]
        await b.delete_object("raw", "k")
        with pytest.raises(NoSuchKey):
            await a.head_object("raw", "k")


async def test_a_bucket_deleted_and_created_again_elsewhere_is_a_new_bucket(
    tmp_path: Path,
) -> None:
    async with engines(tmp_path, 2) as (a, b):
        await a.create_bucket("again")
        await a.put_object("again", "old", body_of(b"old"))
        await b.delete_object("again", "old")
        await b.delete_bucket("again")
        with pytest.raises(NoSuchBucket):
            await a.head_bucket("again")
        await b.create_bucket("again")
        await b.put_object("again", "new", body_of(b"new"))
        await a.put_object("again", "mine", body_of(b"mine"))  # a's old writer must not win
        for engine in (a, b):
            keys = [e.key for e in (await engine.list_objects("again")).entries]
            assert keys == ["mine", "new"]
