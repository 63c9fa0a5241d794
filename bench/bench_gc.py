"""Garbage collection and fsck: time and CPU per GiB over a real disk store.

    python -m bench.bench_gc [--mib 256] [--delete-fraction 0.5]

Puts ``--mib`` MiB in objects of mixed sizes (4 KiB to 8 MiB), deletes a fraction of
them, then collects with no history kept and no grace (``collect_garbage``), and checks
what is left (``check_store``). Prints the wall time and process CPU of each phase, per
GiB stored, what was swept, and the data directory's size before and after (which only
shrinks once the store compacts its packs, ``reclaim_space``).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from relay.bucket import check_store, collect_garbage
from relay.config import load_config
from relay.storage import open_storage

SIZES = (4 << 10, 64 << 10, 1 << 20, 3 << 20, 8 << 20)


async def one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def run(mib: int, delete_fraction: float) -> None:
    rng = random.Random(18)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        config = load_config(
            data_dir=data_dir,
            environ={"RELAY_GC_HISTORY_RETENTION_SECONDS": "0", "RELAY_GC_GRACE_SECONDS": "0"},
        )
        async with open_storage(config) as engine:
            await engine.create_bucket("bench")
            keys, total = [], 0
            while total < mib << 20:
                size = rng.choice(SIZES)
                key = f"object-{len(keys)}"
                await engine.put_object("bench", key, one_piece(os.urandom(size)))
                keys.append(key)
                total += size
            doomed = rng.sample(keys, int(len(keys) * delete_fraction))
            await engine.delete_objects("bench", doomed)
            await trio.sleep(0.01)  # past the zero retention
            before = directory_bytes(data_dir)
            print(f"stored {total / 2**20:.0f} MiB in {len(keys)} objects; deleted {len(doomed)}")

            wall, cpu = time.perf_counter(), time.process_time()
            report = await collect_garbage(engine, config.gc)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            gib = total / 2**30
            print(
                f"gc: swept {report.blobs_swept} blobs ({report.bytes_swept / 2**20:.0f} MiB) of"
                f" {report.blobs_listed}, {report.blobs_marked} reachable;"
                f" {wall:.2f} s wall, {cpu:.2f} s CPU ({wall / gib:.2f} s, {cpu / gib:.2f} s CPU"
                " per GiB stored)"
            )
            wall, cpu = time.perf_counter(), time.process_time()
            checked = await check_store(
                engine, history_retention_seconds=config.gc.history_retention_seconds
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            live = total * (1 - delete_fraction) / 2**30
            print(
                f"fsck: {'clean' if checked.clean else 'PROBLEMS'}, {checked.chunks_checked}"
                f" chunks; {wall:.2f} s wall, {cpu:.2f} s CPU (~{wall / live:.2f} s per live GiB)"
            )
        after = directory_bytes(data_dir)
        print(f"data directory: {before / 2**20:.0f} MiB before gc, {after / 2**20:.0f} MiB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--delete-fraction", type=float, default=0.5)
    args = parser.parse_args()
    trio.run(run, args.mib, args.delete_fraction)


if __name__ == "__main__":
    main()
