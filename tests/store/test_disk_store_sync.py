"""The disk store's syncs group: what a burst of multipart parts relies on to stay cheap.

Every part syncs the store before its registry row is written. Parts that arrive together
call ``sync`` together; the first does the work and the others, queued behind it, find
nothing left to make durable.
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

from relay.ipld import multihash
from relay.store.disk import open_disk_store

MIB = 1 << 20


async def test_concurrent_syncs_of_the_same_puts_cost_one_fsync_round(tmp_path: Path) -> None:
    blobs = [random.Random(n).randbytes(MIB) for n in range(8)]
    async with open_disk_store(tmp_path) as store:
        for data in blobs:
            await store.put(multihash.sha2_256(data), data)
        async with trio.open_nursery() as nursery:
            for _ in blobs:
                nursery.start_soon(store.sync)
        disk = store.disk_statistics()
        assert store.statistics().syncs == len(blobs)
        assert disk.index_commits == 1
        assert disk.file_syncs == 2  # the one pack, and the packs directory it is new in
        assert disk.pending_blobs == 0
    async with open_disk_store(tmp_path) as store:
        for data in blobs:
            assert await store.get(multihash.sha2_256(data)) == data
