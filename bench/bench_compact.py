"""What giving space back costs, by hand:
``.venv/bin/python -m bench.bench_compact [--gib 1] [--keep 0.5] [--dir DIR]``.

Disk store, in a temporary directory under ``--dir`` (default: the system's): put
``--gib`` of 1 MiB blobs into 128 MiB packs, delete all but ``--keep`` of them at random
(every pack then falls below the 0.8 live fraction, so every live byte is copied), and
time ``reclaim_space``: wall and CPU seconds per GiB scanned (the packs it rewrote) and
per GiB copied, and the space before and after. Then one unthrottled scrub pass over what
is left: the rate the scrub could reach (it is paced to ``gc.scrub_bytes_per_second``, 16
MiB/s by default) and its CPU per GiB.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import trio

from relay.ipld import multihash
from relay.store.disk import open_disk_store
from relay.store.scrub import Scrubber

MIB = 1 << 20
GIB = 1 << 30


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


async def run(root: Path, gib: float, keep: float) -> None:
    count = int(gib * GIB / MIB)
    rng = random.Random(1)
    async with open_disk_store(root, pack_size_limit_bytes=128 * MIB, reserve_bytes=0) as store:
        names = []
        for n in range(count):
            data = os.urandom(MIB)
            mh = multihash.sha2_256(data)
            await store.put(mh, data)
            names.append(mh)
            if n % 64 == 63:
                await store.sync()
        await store.sync()
        kept = 0
        for mh in names:
            if rng.random() >= keep:
                await store.delete(mh)
            else:
                kept += 1
        before = tree_bytes(root / "packs")
        wall, cpu = time.perf_counter(), time.process_time()
        report = await store.reclaim_space()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = tree_bytes(root / "packs")
        copied = kept * MIB  # every pack falls below the threshold: every live blob moves
        scanned_gib = report.bytes_freed / GIB
        copied_gib = copied / GIB
        print(
            f"compaction: {report.packs_rewritten} packs rewritten, {report.packs_deleted}"
            f" deleted; packs {before / MIB:.0f} MiB -> {after / MIB:.0f} MiB"
            f" (copied ~{copied / MIB:.0f} MiB)"
        )
        print(
            f"  {wall:.2f} s wall, {cpu:.2f} s CPU: per GiB scanned {wall / scanned_gib:.2f} s"
            f" wall / {cpu / scanned_gib:.2f} s CPU; per GiB copied {wall / copied_gib:.2f} s"
            f" wall / {cpu / copied_gib:.2f} s CPU"
        )
        scrubber = Scrubber(store, 1 << 50)
        wall, cpu = time.perf_counter(), time.process_time()
        await scrubber.scrub_pass()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        verified = scrubber.statistics().bytes_verified
        print(
            f"scrub (unthrottled): {verified / MIB:.0f} MiB in {wall:.2f} s ="
            f" {verified / MIB / wall:.0f} MiB/s, {cpu / (verified / GIB):.2f} s CPU per GiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        trio.run(run, Path(directory) / "blobs", args.gib, args.keep)


if __name__ == "__main__":
    main()
