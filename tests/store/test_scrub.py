"""The background scrub: finds damage on disk, makes the store forget it, keeps its rate."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import trio
import trio.testing

from relay.store.base import BlobNotFound, CorruptBlob, StoredBlob
from relay.store.disk import open_disk_store
from relay.store.scrub import FIRST_PASS_DELAY_SECONDS, Scrubber, serve_scrub

MiB = 1 << 20


def make_blob(seed: int, size: int) -> tuple[bytes, bytes]:
    data = random.Random(seed).randbytes(size)
    return b"\x12\x20" + hashlib.sha256(data).digest(), data


async def test_a_flipped_byte_is_found_forgotten_and_repaired_by_the_next_put(
    tmp_path: Path,
) -> None:
    blobs = [make_blob(n, size) for n, size in enumerate([100, 5000, 300_000, MiB])]
    victim_mh, victim_data = blobs[2]
    async with open_disk_store(tmp_path, reserve_bytes=0) as store:
        for mh, data in blobs:
            await store.put(mh, data)
        await store.sync()
        for pack in (tmp_path / "packs").glob("*.pack"):
            raw = bytearray(pack.read_bytes())
            where = raw.find(victim_data[:100])
            if where >= 0:
                raw[where + 1000] ^= 0x01
                pack.write_bytes(bytes(raw))
        scrubber = Scrubber(store, 1 << 40)
        await scrubber.scrub_pass()
        statistics = scrubber.statistics()
        assert statistics.corrupt_found == 1
        assert statistics.blobs_verified == 3
        assert statistics.bytes_verified == sum(len(d) for m, d in blobs if m != victim_mh)
        assert statistics.passes_completed == 1
        # Forgotten: reads fail cleanly, the blob is no longer listed.
        assert not await store.has(victim_mh)
        try:
            await store.get(victim_mh)
        except (BlobNotFound, CorruptBlob):
            pass
        else:  # pragma: no cover
            raise AssertionError("a damaged blob read back")
        # A put of the same bytes repairs it; the next pass finds nothing wrong.
        await store.put(victim_mh, victim_data)
        await store.sync()
        assert await store.get(victim_mh) == victim_data
        await scrubber.scrub_pass()
        assert scrubber.statistics().corrupt_found == 1
        assert scrubber.statistics().blobs_verified == 3 + 4


class ListedStore:
    """Just what the scrub needs: blobs to list and to read back (counting reads)."""

    def __init__(self, sizes: list[int]) -> None:
        self.blobs = dict(make_blob(n, size) for n, size in enumerate(sizes))
        self.reads = 0

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        for mh in sorted(self.blobs):
            await trio.lowlevel.checkpoint()
            yield StoredBlob(mh, len(self.blobs[mh]), 0)

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        await trio.lowlevel.checkpoint()
        self.reads += 1
        return self.blobs[mh]


async def test_a_pass_keeps_to_the_configured_rate(autojump_clock: trio.abc.Clock) -> None:
    store = ListedStore([MiB] * 8)
    scrubber = Scrubber(store, MiB)  # 1 MiB/s: 8 MiB take at least 7 s (the first is free)
    started = trio.current_time()
    await scrubber.scrub_pass()
    assert trio.current_time() - started >= 7
    assert scrubber.statistics().bytes_verified == 8 * MiB


async def test_serve_scrub_starts_after_its_delay_and_reports_progress(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = ListedStore([1000] * 5)
    async with trio.open_nursery() as nursery:
        scrubber = await nursery.start(serve_scrub, store, 10_000)
        await trio.sleep(FIRST_PASS_DELAY_SECONDS / 2)
        assert scrubber.statistics().blobs_verified == 0
        await trio.sleep(FIRST_PASS_DELAY_SECONDS)
        assert scrubber.statistics().blobs_verified >= 5
        assert scrubber.statistics().passes_completed >= 1
        nursery.cancel_scope.cancel()
