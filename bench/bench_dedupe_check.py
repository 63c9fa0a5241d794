"""What a deduplicated put costs now that it checks the bytes it would trust, by hand:
``.venv/bin/python -m bench.bench_dedupe_check [--blobs N] [--s3]``.

Disk store, per 1 MiB put, on a fresh store in a temporary directory: a new blob (the
write plus its share of one sync), the index lookup alone (the old dedupe), the header
check the store does now (``DiskBlobStore._holds``: the record header and its last byte),
and re-reading and hashing the record (the check it does not do: about twice a write).
With ``--s3`` (needs moto, as the tests use it): the s3 store's put of a new blob (one
PUT) and of a blob known present (now one HEAD), at 4 KiB and 1 MiB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from relay.ipld import multihash
from relay.store.disk import open_disk_store

MIB = 1 << 20


async def per_item(count: int, run: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(wall, CPU) milliseconds per item of ``run``."""
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    return (
        (time.perf_counter() - wall) / count * 1e3,
        (time.process_time() - cpu) / count * 1e3,
    )


async def disk(count: int) -> None:
    blobs = [os.urandom(MIB) for _ in range(count)]
    located = [(multihash.sha2_256(blob), blob) for blob in blobs]
    with tempfile.TemporaryDirectory() as directory:
        async with open_disk_store(Path(directory)) as store:

            async def write() -> None:
                for mh, blob in located:
                    await store.put(mh, blob)
                await store.sync()

            async def lookup() -> None:
                for mh, _ in located:
                    await trio.to_thread.run_sync(store._index.lookup, mh)

            def check(mh: bytes) -> bool:
                location = store._index.lookup(mh)
                assert location is not None
                return store._holds([(mh, location)])[0]

            async def header_check() -> None:
                for mh, _ in located:
                    assert await trio.to_thread.run_sync(check, mh)

            def rehash(mh: bytes) -> bool:
                location = store._index.lookup(mh)
                assert location is not None
                return store._intact(mh, location)

            async def rehash_check() -> None:
                for mh, _ in located:
                    assert await trio.to_thread.run_sync(rehash, mh)

            async def dedupe() -> None:
                for mh, blob in located:
                    await store.put(mh, blob)
                await store.sync()

            for label, run in (
                ("new blob: write + sync", write),
                ("index lookup only (old)", lookup),
                ("header check (now)", header_check),
                ("re-read + hash", rehash_check),
                ("deduplicated put (now)", dedupe),
            ):
                wall, cpu = await per_item(count, run)
                print(f"disk  1 MiB  {label:26s} {wall:7.3f} ms wall {cpu:7.3f} ms CPU")
            assert store.statistics().blobs_deduplicated == count


TESTS = Path(__file__).resolve().parent.parent / "tests"


async def s3(count: int) -> None:
    sys.path.insert(0, str(TESTS))
    from moto_upstream import moto_or_skip, stop_moto  # type: ignore[import-not-found]

    from relay.store.s3 import open_s3_store

    with tempfile.TemporaryDirectory() as directory:
        moto = moto_or_skip(Path(directory))
        try:
            async with open_s3_store(moto.store_config(moto.new_bucket())) as store:
                for size in (4 << 10, MIB):
                    blobs = [os.urandom(size) for _ in range(count)]
                    located = [(multihash.sha2_256(blob), blob) for blob in blobs]

                    async def put_all(located: list[tuple[bytes, bytes]]) -> None:
                        for mh, blob in located:
                            await store.put(mh, blob)

                    new, _ = await per_item(count, partial(put_all, located))
                    known, _ = await per_item(count, partial(put_all, located))
                    print(
                        f"s3    {size >> 10:4d} KiB  new blob (PUT) {new:6.2f} ms,"
                        f" known blob (HEAD) {known:6.2f} ms"
                    )
        finally:
            stop_moto(moto.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=64)
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    trio.run(disk, args.blobs)
    if args.s3:
        trio.run(s3, args.blobs)


if __name__ == "__main__":
    main()
