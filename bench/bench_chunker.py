"""The chunker on a 1 GiB stream against hashlib MD5 + SHA-256 over the same buffers.

Baseline: one thread running ``md5.update(buf)`` and ``sha256(buf)`` over every 1 MiB
buffer — the least any server that returns an MD5 ETag and addresses chunks by SHA-256
must do. relay does that plus BLAKE3 of the whole body, a copy out of its reusable
buffer and the hand-off to the blob store (a null store here, so only the chunker is
measured). Goal: relay's throughput ≥ 0.8 × the baseline, peak RSS ≤ 100 MiB.

Run: ``.venv/bin/python -m bench.bench_chunker [--mib 1024] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import AsyncIterator

import trio

from bench.common import median, peak_rss_mib, save, table
from relay.chunker import ChunkerConfig, chunk_into_store
from relay.store.base import StoreStatistics

PIECE = 64 << 10  # what an HTTP body read hands over at a time


class NullStore:
    """Accepts every put and forgets it: the chunker alone is measured."""

    async def put(self, mh: bytes, data: bytes) -> None:
        await trio.lowlevel.checkpoint()

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(0, 0, 0, 0, 0)


def baseline(pattern: bytes, mib: int) -> float:
    start = time.perf_counter()
    md5 = hashlib.md5()
    for _ in range(mib):
        md5.update(pattern)
        hashlib.sha256(pattern).digest()
    return mib / (time.perf_counter() - start)


async def chunker(pattern: bytes, mib: int) -> float:
    pieces = [pattern[i : i + PIECE] for i in range(0, len(pattern), PIECE)]

    async def source() -> AsyncIterator[bytes]:
        for _ in range(mib):
            for piece in pieces:
                yield piece

    start = time.perf_counter()
    body = await chunk_into_store(source(), NullStore(), ChunkerConfig())  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    assert body.size == mib << 20
    return mib / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pattern = os.urandom(1 << 20)
    relay_rates, base_rates = [], []
    for _ in range(args.rounds):  # alternate, so drift hits both alike
        base_rates.append(baseline(pattern, args.mib))
        relay_rates.append(trio.run(chunker, pattern, args.mib))
    ratio = median(relay_rates) / median(base_rates)
    result = {
        "stream_mib": args.mib,
        "rounds": args.rounds,
        "relay_mib_per_s": relay_rates,
        "baseline_md5_sha256_mib_per_s": base_rates,
        "ratio_median": ratio,
        "peak_rss_mib": peak_rss_mib(),
        "goals": {"ratio": ">= 0.8", "peak_rss_mib": "<= 100"},
    }
    path = save("chunker", result)
    print(
        table(
            [
                (
                    "relay chunker (MiB/s)",
                    f"{median(relay_rates):.0f}  "
                    f"(min {min(relay_rates):.0f}, max {max(relay_rates):.0f})",
                ),
                (
                    "hashlib MD5+SHA-256 (MiB/s)",
                    f"{median(base_rates):.0f}  "
                    f"(min {min(base_rates):.0f}, max {max(base_rates):.0f})",
                ),
                ("ratio (goal >= 0.8)", f"{ratio:.2f}"),
                ("peak RSS (goal <= 100 MiB)", f"{peak_rss_mib():.1f} MiB"),
                ("results", str(path)),
            ]
        )
    )


if __name__ == "__main__":
    main()
