"""Disk store throughput, by hand: ``.venv/bin/python -m bench.bench_store [DIRECTORY]``.

Small blobs: 10,000 x 4 KiB, a sync every 100 puts, one task and 16 tasks.
Large blobs: 1 GiB of 1 MiB blobs, a sync at the end (included in the time), with 1 and
4 puts in flight (the chunker's bound), then the same blobs read back and verified.
Each scenario runs on a fresh store under DIRECTORY (default: a temporary directory).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from relay.ipld import multihash
from relay.store.disk import DiskBlobStore, open_disk_store

KIB = 1024
MIB = 1024 * KIB


def make_blobs(count: int, size: int, salt: bytes) -> list[tuple[bytes, bytes]]:
    base = bytes(range(256)) * (size // 256)
    blobs = []
    for n in range(count):
        data = salt + n.to_bytes(8, "big") + base[len(salt) + 8 :]
        blobs.append((multihash.sha2_256(data), data))
    return blobs


async def put_all(
    store: DiskBlobStore, blobs: list[tuple[bytes, bytes]], tasks: int, sync_every: int | None
) -> None:
    """Put ``blobs`` from ``tasks`` tasks; sync after every ``sync_every`` completed puts."""
    next_blob = 0
    completed = 0

    async def worker() -> None:
        nonlocal next_blob, completed
        while next_blob < len(blobs):
            mh, data = blobs[next_blob]
            next_blob += 1
            await store.put(mh, data)
            completed += 1
            if sync_every and completed % sync_every == 0:
                await store.sync()

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    await store.sync()


async def timed(
    label: str, unit_count: float, unit: str, run: Callable[[], Awaitable[None]]
) -> None:
    start = time.perf_counter()
    await run()
    seconds = time.perf_counter() - start
    print(f"{label:<48} {unit_count / seconds:>10,.0f} {unit}  ({seconds:.2f} s)")


async def main(root: Path) -> None:
    small = make_blobs(10_000, 4 * KIB, b"small")
    for tasks in (1, 16):
        async with open_disk_store(root / f"small-{tasks}") as store:
            await timed(
                f"10,000 x 4 KiB, sync/100 puts, {tasks} task(s)",
                len(small),
                "puts/s",
                partial(put_all, store, small, tasks, 100),
            )
            stats = store.disk_statistics()
            print(f"    {stats.file_syncs} file fsyncs, {stats.index_commits} index commits")

    large = make_blobs(1024, MIB, b"large")
    for tasks in (1, 4):
        async with open_disk_store(root / f"large-{tasks}") as store:
            await timed(
                f"1 GiB of 1 MiB blobs, one sync, {tasks} in flight",
                1024 * MIB / 1e6,
                "MB/s",
                partial(put_all, store, large, tasks, None),
            )
    async with open_disk_store(root / "large-4") as store:

        async def read_all() -> None:
            async def reader(part: list[tuple[bytes, bytes]]) -> None:
                for mh, _ in part:
                    await store.get(mh)

            async with trio.open_nursery() as nursery:
                for k in range(4):
                    nursery.start_soon(reader, large[k::4])

        await timed(
            "read back 1 GiB (verified, page cache), 4 tasks", 1024 * MIB / 1e6, "MB/s", read_all
        )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        trio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as directory:
            trio.run(main, Path(directory))
