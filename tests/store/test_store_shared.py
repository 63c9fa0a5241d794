"""SingleFlight: concurrent puts of one blob share one write, and a failure is retried."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio
import trio.testing

from relay.store.disk import open_disk_store
from relay.store.shared import SingleFlight


async def test_concurrent_callers_share_one_write() -> None:
    flights = SingleFlight()
    writes = 0
    release = trio.Event()
    results: list[bool] = []

    async def write() -> bool:
        nonlocal writes
        writes += 1
        await release.wait()
        return True

    async def caller() -> None:
        results.append(await flights.run(b"mh", write))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        assert len(flights) == 1
        release.set()
    assert writes == 1
    assert sorted(results) == [False] * 49 + [True]  # only the writer stored it
    assert len(flights) == 0


async def test_a_failed_write_is_retried_by_a_waiter() -> None:
    flights = SingleFlight()
    attempts = 0
    release = trio.Event()

    async def write() -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await release.wait()
            raise OSError("disk full")
        await trio.lowlevel.checkpoint()  # still in flight when the other waiters look
        return True

    outcomes: list[object] = []

    async def caller() -> None:
        try:
            outcomes.append(await flights.run(b"mh", write))
        except OSError as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert attempts == 2  # the failure, then one waiter's own try; the rest share it
    assert sum(isinstance(o, OSError) for o in outcomes) == 1
    assert (outcomes.count(True), outcomes.count(False)) == (1, 3)


async def test_disk_store_checks_a_synced_blob_once_for_many_identical_puts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many requests carrying the same chunk (empty files, a file synced twice). Once a
    # sync has moved the blob out of the pending set, each put must ask the index; the
    # waiters used to wake after every lookup and send the next one to the index in turn:
    # N identical puts cost N thread hops and ~N² wake-ups. Now they share one lookup.
    data = b"same chunk" * 10_000  # too large to be staged: each put checks the index
    mh = b"\x12\x20" + hashlib.sha256(data).digest()
    async with open_disk_store(tmp_path) as store:
        await store.put(mh, data)
        await store.sync()
        calls = 0
        original = store._write_if_absent

        def counting(mh: bytes, data: bytes) -> object:
            nonlocal calls
            calls += 1
            return original(mh, data)

        monkeypatch.setattr(store, "_write_if_absent", counting)
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(store.put, mh, data)
        assert calls == 1
        stats = store.statistics()
        assert (stats.blobs_written, stats.blobs_deduplicated) == (1, 200)
        assert await store.get(mh) == data
