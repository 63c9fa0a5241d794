"""What the commit protocol costs when several processes write one bucket, by hand:
``.venv/bin/python -m bench.bench_rebase [--puts N] [--writers W] [--engines E]``.

In one process, ``E`` engines share one SQLite registry file and one memory blob store,
exactly as E relay processes share a registry and an upstream store (each engine has its
own registry connections, writer, caches). ``W`` concurrent writers put ``N`` small
objects in total into ONE bucket, spread over the engines. Reported: CPU per put, and
how many batches were rebased because another engine committed first — against the same
workload on one engine (no rebase possible). A memory store isolates the protocol; its
sync sleeps ``--sync-ms`` as an fsync would take (0: commits are nearly free, the harshest
race for a writer that lost, which must catch up and rebase while the winner commits).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import trio

from relay.bucket.engine import Engine, open_engine
from relay.registry import open_sqlite_registry
from relay.store import MemoryBlobStore


async def body(data: bytes):  # type: ignore[no-untyped-def]
    yield data


class SyncingMemoryStore(MemoryBlobStore):
    """A memory store whose sync takes as long as an fsync does on a disk (``--sync-ms``):
    what makes a commit take time, so that processes race for it as they do for real."""

    def __init__(self, sync_seconds: float) -> None:
        super().__init__()
        self._sync_seconds = sync_seconds

    async def sync(self) -> None:
        await trio.sleep(self._sync_seconds)
        await super().sync()


async def run(
    directory: Path, engines_count: int, writers: int, puts: int, sync_seconds: float
) -> tuple[float, int]:
    store = SyncingMemoryStore(sync_seconds)
    async with AsyncExitStack() as stack:
        engines: list[Engine] = []
        for _ in range(engines_count):
            registry = await stack.enter_async_context(
                open_sqlite_registry(directory / "registry.sqlite")
            )
            engines.append(await stack.enter_async_context(open_engine(store, registry)))
        await engines[0].create_bucket("b")
        per_writer = puts // writers

        async def writer(index: int) -> None:
            engine = engines[index % engines_count]
            for n in range(per_writer):
                await engine.put_object("b", f"w{index}/{n}", body(b"x" * 4096))

        started = time.process_time()
        async with trio.open_nursery() as nursery:
            for index in range(writers):
                nursery.start_soon(writer, index)
        cpu = time.process_time() - started
        rebases = sum(engine.statistics().commit_rebases for engine in engines)
        versions = len(await engines[0].bucket_log("b"))
        assert versions - 1 == sum(e.statistics().commit_batches for e in engines)
        return cpu / (per_writer * writers), rebases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=4000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--sync-ms", type=float, default=2.0)
    args = parser.parse_args()
    for engines in (1, args.engines):
        with tempfile.TemporaryDirectory() as directory:
            cpu, rebases = trio.run(
                run, Path(directory), engines, args.writers, args.puts, args.sync_ms / 1000
            )
        print(
            f"engines={engines} writers={args.writers} puts={args.puts}"
            f" sync={args.sync_ms} ms:"
            f" {cpu * 1e3:.3f} ms CPU per put, {rebases} batches rebased"
        )


if __name__ == "__main__":
    main()
