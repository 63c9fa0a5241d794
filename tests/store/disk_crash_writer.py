"""Run by test_disk_store_crash: put blobs and sync forever, reporting on stdout.

``python disk_crash_writer.py STORE_DIR ROUND`` prints ``put ROUND:N`` before blob N is
put and ``ack ROUND:N`` once a sync that started after its put returned. Blob N's bytes
are a pure function of (ROUND, N) (see ``blob_for``), so the test can check them.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

import trio

from relay.store.disk import open_disk_store

SIZES = [1, 4096, 65_536, 300_000, 1 << 20]


def blob_for(round_number: int, n: int) -> tuple[bytes, bytes]:
    rng = random.Random(f"{round_number}:{n}")
    data = rng.randbytes(rng.choice(SIZES))
    return b"\x12\x20" + hashlib.sha256(data).digest(), data


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(directory: Path, round_number: int) -> None:
    # A small pack limit so that kills also land around pack rotation.
    async with open_disk_store(directory, pack_size_limit_bytes=4 << 20) as store:
        n = 0
        while True:
            batch = []
            async with trio.open_nursery() as nursery:
                for _ in range(random.randint(1, 6)):
                    mh, data = blob_for(round_number, n)
                    say(f"put {round_number}:{n}")
                    nursery.start_soon(store.put, mh, data)
                    batch.append(n)
                    n += 1
            await store.sync()
            for done in batch:
                say(f"ack {round_number}:{done}")


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
