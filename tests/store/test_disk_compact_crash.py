"""kill -9 at random moments during compaction: every live blob reads back intact.

A prepared store (many small packs, three quarters of the blobs deleted) is copied for
each trial; a subprocess compacts the copy and is SIGKILLed after a random delay, which
lands before, inside (copying, syncing, switching the index, deleting old packs) or
after the compaction. The store is then reopened: every blob that was live must read back
byte-identical, none deleted may come back, and a second compaction must finish cleanly
and leave the same blobs readable.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from relay.store.disk import open_disk_store

SCRIPT = Path(__file__).with_name("disk_compact_crash.py")
PACK_LIMIT = 1 << 20
TRIALS = 16


def make_blob(seed: int, size: int) -> tuple[bytes, bytes]:
    data = random.Random(seed).randbytes(size)
    return b"\x12\x20" + hashlib.sha256(data).digest(), data


async def prepare(directory: Path) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    rng = random.Random(3)
    blobs = [make_blob(n, rng.choice([2000, 40_000, 200_000])) for n in range(400)]
    async with open_disk_store(
        directory, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        for mh, data in blobs:
            await store.put(mh, data)
        await store.sync()
        live = [blob for n, blob in enumerate(blobs) if n % 4 == 0]
        deleted = [mh for n, (mh, _) in enumerate(blobs) if n % 4]
        for mh in deleted:
            await store.delete(mh)
    return live, deleted


async def compact_and_kill(directory: Path, delay: float) -> bool:
    """Start the compaction, SIGKILL it ``delay`` seconds in; whether it had finished."""
    output = bytearray()
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), str(directory)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        with trio.fail_after(60):
            while b"compacting" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, "the compactor exited before it started"
                output += chunk
        with trio.move_on_after(delay):
            while chunk := await process.stdout.receive_some():
                output += chunk
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    return b"done" in output


async def check(directory: Path, live: list[tuple[bytes, bytes]], deleted: list[bytes]) -> None:
    async with open_disk_store(
        directory, pack_size_limit_bytes=PACK_LIMIT, reserve_bytes=0
    ) as store:
        for mh, data in live:
            assert await store.get(mh) == data
        for mh in deleted[::7]:
            assert not await store.has(mh)
        await store.reclaim_space()
        for mh, data in live:
            assert await store.get(mh) == data
        listed = [blob.multihash async for blob in store.list_blobs()]
        assert sorted(listed) == sorted(mh for mh, _ in live)


@pytest.mark.slow
async def test_a_compaction_killed_at_any_moment_loses_no_live_blob(tmp_path: Path) -> None:
    template = tmp_path / "template"
    live, deleted = await prepare(template)
    rng = random.Random(11)
    finished = 0
    for trial in range(TRIALS):
        directory = tmp_path / f"trial{trial}"
        shutil.copytree(template, directory)
        # The compaction takes 50-150 ms here: most kills land inside it.
        finished += await compact_and_kill(directory, rng.uniform(0, 0.15))
        await check(directory, live, deleted)
        shutil.rmtree(directory)
    assert finished < TRIALS, "every kill came too late to interrupt a compaction"
