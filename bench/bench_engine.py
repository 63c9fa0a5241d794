"""Group commit at the engine level: N concurrent 4 KiB puts into one bucket, disk store.

Each put streams its body through the chunker into the disk store, writes nothing else
(a 4 KiB object is one raw leaf) and submits its manifest; the bucket's writer commits
whatever is queued as one batch (one commit CAR, one store sync, one registry
transaction). Reported: puts/s, commits made, and — as the same-run baseline — the rate
when the same puts go one at a time (each its own commit, what a per-bucket lock gives).
Goal: >= 2,000 puts/s, far fewer commits than puts.

Run: ``.venv/bin/python -m bench.bench_engine [--puts 10000] [--concurrency 10000]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from bench.common import peak_rss_mib, save, table
from relay.config import load_config
from relay.storage import open_storage


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def run(directory: Path, puts: int, concurrency: int, size: int) -> dict[str, float]:
    config = load_config(data_dir=directory, environ={})
    async with open_storage(config) as engine:
        await engine.create_bucket("bench")
        payloads = [os.urandom(size) for _ in range(min(puts, 1000))]
        limiter = trio.CapacityLimiter(concurrency)

        async def put(i: int) -> None:
            async with limiter:
                data = payloads[i % len(payloads)]
                await engine.put_object(
                    "bench", f"files/{i:06d}.bin", _body(data), size_hint=len(data)
                )

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(puts):
                nursery.start_soon(put, i)
        elapsed = time.perf_counter() - start
        commits = len(await engine.bucket_log("bench")) - 1
        page = await engine.list_objects("bench", limit=puts)
        assert len(page.entries) == puts, "every put must be listed"
    return {"puts_per_s": puts / elapsed, "seconds": elapsed, "commits": commits}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--puts", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--serial-puts", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        grouped = trio.run(run, Path(tmp) / "grouped", args.puts, args.concurrency, args.size)
        serial = trio.run(run, Path(tmp) / "serial", args.serial_puts, 1, args.size)
    result = {
        "puts": args.puts,
        "concurrency": args.concurrency,
        "object_bytes": args.size,
        "grouped": grouped,
        "one_at_a_time": serial,
        "speedup": grouped["puts_per_s"] / serial["puts_per_s"],
        "peak_rss_mib": peak_rss_mib(),
        "goals": {"puts_per_s": ">= 2000", "commits": "far fewer than puts"},
    }
    path = save("engine", result)
    print(
        table(
            [
                (
                    f"{args.puts} concurrent puts",
                    f"{grouped['puts_per_s']:.0f} puts/s"
                    f" in {grouped['seconds']:.2f} s, {grouped['commits']:.0f} commits",
                ),
                (
                    f"{args.serial_puts} puts one at a time",
                    f"{serial['puts_per_s']:.0f} puts/s, {serial['commits']:.0f} commits",
                ),
                ("group commit speed-up", f"{result['speedup']:.1f}x"),
                ("peak RSS", f"{peak_rss_mib():.0f} MiB"),
                ("results", str(path)),
            ]
        )
    )


if __name__ == "__main__":
    main()
