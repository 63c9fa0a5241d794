"""Run by test_gc_crash_campaign: one garbage collection, to be SIGKILLed midway.

``python gc_crash_child.py DATA_DIR`` opens the data directory as ``relay gc`` does (no
history kept, no grace, 1 MiB packs), prints ``collecting`` once the store is open, runs
the collection with its compaction, and prints ``done SECONDS`` if it is not killed first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import trio

from relay.bucket import GcConfig, collect_garbage
from relay.config import load_config
from relay.storage import open_storage

PACK_LIMIT = {"RELAY_PACK_SIZE_LIMIT_BYTES": str(1 << 20)}
COLLECT_NOW = GcConfig(history_retention_seconds=0, grace_seconds=0)


async def main(data_dir: Path) -> None:
    async with open_storage(load_config(data_dir=data_dir, environ=PACK_LIMIT)) as engine:
        sys.stdout.write("collecting\n")
        sys.stdout.flush()
        started = time.perf_counter()
        await collect_garbage(engine, COLLECT_NOW)
        sys.stdout.write(f"done {time.perf_counter() - started:.4f}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
