"""Garbage collection on the real disk store, where space is files on a disk.

A churn run: 100 rounds of a changing tree synced with deletes, each followed by a
collection, and the data directory stays bounded by what is live. And the pack another
worker is still writing: the collector cannot compact it, so that worker hands it over.

What `aws s3 sync --delete` does to a bucket each round (files change, some go, some
arrive), through the engine with the default chunk size, the disk store (4 MiB packs, so
compaction has many packs to choose among) and the SQLite registry, all in a temporary
data directory whose every file counts: packs, index, registry, WAL, ``RESERVE``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from relay.bucket import GcConfig, collect_garbage, serve_gc
from relay.config import load_config
from relay.storage import open_storage

KiB, MiB = 1 << 10, 1 << 20
ROUNDS = 100
RESERVE = 16 * MiB
# Compacted packs stay at least 80% live (the store's default), so packs take at most
# 1.25x what is live; the index and the registry (with its WAL) take a few MiB more.
PACKS_OVER_LIVE = 1.25
METADATA_ALLOWANCE = 8 * MiB


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


@pytest.mark.slow
async def test_a_hundred_rounds_of_sync_with_deletes_keep_the_directory_bounded(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    config = load_config(data_dir=data_dir, environ={"RELAY_PACK_SIZE_LIMIT_BYTES": str(4 * MiB)})
    collect_now = GcConfig(history_retention_seconds=0, grace_seconds=0)
    rng = random.Random(100)
    tree: dict[str, bytes] = {}
    written = 0
    rounds: list[tuple[int, int]] = []  # (bytes on disk, bytes live) after each collection
    async with open_storage(config) as engine:
        await engine.create_bucket("synced")
        for _ in range(ROUNDS):
            for key in list(tree):
                if rng.random() < 0.15:
                    del tree[key]
                    await engine.delete_object("synced", key)
            for _ in range(rng.randrange(2, 8)):
                key = f"dir{rng.randrange(5)}/file{rng.randrange(20)}"
                tree[key] = rng.randbytes(rng.choice([2 * KiB, 60 * KiB, 700 * KiB, 2 * MiB]))
                written += len(tree[key])
                await engine.put_object("synced", key, body(tree[key]))
            await collect_garbage(engine, collect_now)
            rounds.append((directory_bytes(data_dir), sum(map(len, tree.values()))))
        for key, data in tree.items():
            assert await engine.read_object("synced", key) == data

    over = [
        (n, on_disk, live)
        for n, (on_disk, live) in enumerate(rounds)
        if on_disk > PACKS_OVER_LIVE * live + RESERVE + METADATA_ALLOWANCE
    ]
    assert over == [], over
    # The run wrote many times what it keeps: without reclaiming, the directory would grow.
    assert written > 4 * max(live for _, live in rounds)
    print(
        f"\nchurn: {written} bytes written over {ROUNDS} rounds; the directory's largest"
        f" {max(d for d, _ in rounds)} bytes, the last {rounds[-1][0]} for {rounds[-1][1]} live"
    )


def packs_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in data_dir.rglob("*.pack"))


async def test_a_worker_that_does_not_collect_hands_its_garbage_pack_to_compaction(
    tmp_path: Path,
) -> None:
    config = load_config(data_dir=tmp_path / "data", environ={})
    collect_now = GcConfig(history_retention_seconds=0, grace_seconds=0, interval_seconds=0.05)
    # Two workers of one data directory: the second writes, the first collects.
    async with open_storage(config) as collector, open_storage(config) as writer:
        await writer.create_bucket("b")
        await writer.put_object("b", "big", body(random.randbytes(6 * MiB)))
        await writer.delete_object("b", "big")
        swept = await collect_garbage(collector, collect_now)
        assert swept.bytes_swept >= 6 * MiB
        # The blobs are gone from the index, but their bytes sit in the writer's pack in
        # progress, which no other process may compact.
        assert packs_bytes(config.data_dir) >= 6 * MiB
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_gc, writer, collect_now, collects=False))
            with trio.fail_after(30):
                while packs_bytes(config.data_dir) >= 1 * MiB:  # noqa: ASYNC110 (a disk)
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        await writer.put_object("b", "after", body(b"still writing"))
        assert await collector.read_object("b", "after") == b"still writing"
