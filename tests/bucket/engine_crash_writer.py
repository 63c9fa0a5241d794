"""A writer the crash test kills: puts objects concurrently, prints each one acknowledged.

Usage: python engine_crash_writer.py DATA_DIR ROUND

Each object's bytes are a pure function of its key (``expected_body``), so the checker can
verify any object it finds without knowing what was sent. A line ``ACK <key>`` is printed
(and flushed) only after ``put_object`` returned, i.e. after the commit was durable; a
delete prints ``DELETING <key>`` before it starts and ``DEL <key>`` after it returned, so
the checker knows which keys a kill left with a delete that may or may not have landed.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from relay.bucket.engine import EngineConfig
from relay.bucket.errors import BucketAlreadyExists
from relay.chunker import ChunkerConfig
from relay.config import Config, StoreConfig
from relay.storage import open_storage

BUCKET = "crash"
# Small chunks so most objects span several chunks and have an index CAR.
CONFIG = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=16 << 10), unixfs_width=4)


def expected_body(key: str) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    size = int.from_bytes(seed[:4], "big") % (200 << 10)
    return hashlib.shake_256(seed).digest(size)


def storage_config(data_dir: Path) -> Config:
    return Config(data_dir=data_dir, engine=CONFIG, store=StoreConfig(kind="disk"))


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 5000):
        yield data[start : start + 5000]
        await trio.lowlevel.checkpoint()


async def main(data_dir: Path, round_number: int) -> None:
    async with open_storage(storage_config(data_dir)) as engine:
        try:
            await engine.create_bucket(BUCKET)
        except BucketAlreadyExists:
            pass
        print("READY", flush=True)
        rng = random.Random(round_number)
        counter = 0

        async def put(key: str) -> None:
            await engine.put_object(BUCKET, key, _pieces(expected_body(key)))
            print(f"ACK {key}", flush=True)

        async def delete(key: str) -> None:
            print(f"DELETING {key}", flush=True)
            await engine.delete_object(BUCKET, key)
            print(f"DEL {key}", flush=True)

        while True:
            # Deletes only touch keys whose puts finished in an earlier wave: a put and a
            # delete of one key racing in the same wave may commit in either order, and
            # the order of the two printed lines would not tell which.
            earlier = counter
            async with trio.open_nursery() as nursery:
                for _ in range(rng.randint(1, 40)):
                    counter += 1
                    nursery.start_soon(put, f"r{round_number}/obj-{counter:06d}")
                if earlier and rng.random() < 0.3:
                    victim = rng.randint(1, earlier)
                    nursery.start_soon(delete, f"r{round_number}/obj-{victim:06d}")


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
