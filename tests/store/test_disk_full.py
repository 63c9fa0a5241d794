"""A full disk is an error, not a wedge: the disk store on a small real filesystem (tmpfs).

Each test mounts its own tmpfs (the tests run as root in CI); where mounting is not
permitted they skip, saying so.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.store.base import StoreFull, writing_commits
from relay.store.disk import DiskBlobStore, open_disk_store

MiB = 1 << 20


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs, unmounted afterwards."""
    yield from mounted_tmpfs(tmp_path / "fs", 24)


def mounted_tmpfs(directory: Path, size_mib: int) -> Iterator[Path]:
    directory.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(
            "FULL-DISK TEST NOT RUN: mounting a tmpfs is not permitted here"
            f" ({mount.stderr.strip()}); run the tests as root"
        )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def make_blob(seed: int, size: int) -> tuple[bytes, bytes]:
    data = random.Random(seed).randbytes(size)
    return b"\x12\x20" + hashlib.sha256(data).digest(), data


async def fill_until_full(store: DiskBlobStore) -> list[tuple[bytes, bytes]]:
    """Put (and sync) 1 MiB blobs until the store refuses one; return those it took."""
    stored = []
    for n in range(1000):
        blob = make_blob(n, MiB)
        try:
            await store.put(*blob)
            await store.sync()
        except StoreFull:
            return stored
        stored.append(blob)
    raise AssertionError("the filesystem never filled")


async def test_a_full_disk_refuses_data_but_commits_deletes_and_recovers(
    small_filesystem: Path,
) -> None:
    root = small_filesystem / "blobs"
    async with open_disk_store(root, pack_size_limit_bytes=4 * MiB, reserve_bytes=2 * MiB) as store:
        assert store.disk_statistics().reserve_held
        stored = await fill_until_full(store)
        assert len(stored) >= 10
        assert store.disk_statistics().full
        # New data is refused at once, small or large, and nothing of it is kept.
        small = make_blob(5000, 1000)
        with pytest.raises(StoreFull, match="full"):
            await store.put(*small)
        assert not await store.has(small[0])
        # Everything acknowledged before is still there.
        for mh, data in stored[-3:]:
            assert await store.get(mh) == data
        # The commit writer may spend the reserve: a delete's commit goes through.
        with writing_commits():
            commit = make_blob(6000, 3000)
            await store.put(*commit)
            await store.sync()
        assert not store.disk_statistics().reserve_held
        # Free space (what garbage collection does): delete blobs, reclaim their packs.
        for mh, _ in stored[: len(stored) // 2]:
            await store.delete(mh)
        report = await store.reclaim_space()
        assert report.bytes_freed >= 4 * MiB
        # Writes succeed again, with no reopen, and the reserve is back.
        await store.put(*small)
        await store.put(*make_blob(7000, MiB))
        await store.sync()
        statistics = store.disk_statistics()
        assert not statistics.full
        assert statistics.reserve_held
        assert await store.get(commit[0]) == commit[1]
    async with open_disk_store(root, pack_size_limit_bytes=4 * MiB, reserve_bytes=2 * MiB) as store:
        assert await store.get(small[0]) == small[1]
        for mh, data in stored[len(stored) // 2 :]:
            assert await store.get(mh) == data


def ballast(directory: Path, size: int) -> Path:
    """A file standing for whatever else fills the disk; deleting it frees ``size``."""
    path = directory / "ballast"
    with path.open("wb") as file:
        file.write(bytes(size))
    return path


async def test_a_sync_that_ran_out_of_space_succeeds_when_retried_after_space_is_freed(
    small_filesystem: Path,
) -> None:
    root = small_filesystem / "blobs"
    other = ballast(small_filesystem, 8 * MiB)
    async with open_disk_store(root, pack_size_limit_bytes=4 * MiB, reserve_bytes=0) as store:
        await fill_until_full(store)
        staged = [make_blob(8000 + n, 60_000) for n in range(40)]
        with writing_commits():  # allowed to try: there is no reserve to spend
            for blob in staged:
                await store.put(*blob)
            with pytest.raises(StoreFull):
                await store.sync()
            # Not wedged: the puts are still pending and readable, just not durable yet.
            assert await store.get(staged[0][0]) == staged[0][1]
            assert not [b async for b in store.list_blobs() if b.multihash == staged[0][0]]
            other.unlink()  # the operator frees space
            await store.sync()  # the same puts, now with room
        listed = {b.multihash async for b in store.list_blobs()}
        assert {mh for mh, _ in staged} <= listed
    async with open_disk_store(root, reserve_bytes=0) as store:
        for mh, data in staged:
            assert await store.get(mh) == data


async def test_a_store_opened_on_a_full_disk_starts_full_and_recovers(
    small_filesystem: Path,
) -> None:
    root = small_filesystem / "blobs"
    other = ballast(small_filesystem, 8 * MiB)
    async with open_disk_store(root, pack_size_limit_bytes=4 * MiB, reserve_bytes=0) as store:
        stored = await fill_until_full(store)
    # Nothing left for a reserve: the store opens, refusing data, rather than failing.
    async with open_disk_store(root, pack_size_limit_bytes=4 * MiB, reserve_bytes=2 * MiB) as store:
        assert store.disk_statistics().full
        assert not store.disk_statistics().reserve_held
        with pytest.raises(StoreFull):
            await store.put(*make_blob(1, MiB))
        other.unlink()
        await store.put(*make_blob(1, MiB))  # finds room: makes the reserve, takes data
        await store.sync()
        assert store.disk_statistics().reserve_held
        assert not store.disk_statistics().full
        for mh, data in stored[-2:]:
            assert await store.get(mh) == data
    assert (root / "RESERVE").stat().st_size == 2 * MiB
