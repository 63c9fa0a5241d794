"""Run by test_disk_compact_crash: compact a prepared store, to be SIGKILLed midway.

``python disk_compact_crash.py STORE_DIR`` opens the store, prints ``compacting`` and runs
``reclaim_space``; it prints ``done`` if it is not killed first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from relay.store.disk import open_disk_store

PACK_LIMIT = 1 << 20


async def main(directory: Path) -> None:
    async with open_disk_store(
        directory, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        sys.stdout.write("compacting\n")
        sys.stdout.flush()
        await store.reclaim_space()
        sys.stdout.write("done\n")
        sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
