"""The record of writes in flight that keeps a collection off blobs no root names yet."""

from __future__ import annotations

import trio

from relay.bucket.inflight import InFlightWrites, writing
from relay.ipld import multihash
from relay.store import MemoryBlobStore

CAR = b"a commit CAR"
CAR_MH = multihash.sha2_256(CAR)


async def test_a_service_task_started_inside_a_write_records_its_commits_itself() -> None:
    # The bucket writer is started by the first put that needs it, so its task inherits
    # that put's context. Its commits must still be writes of their own: a commit still
    # under way after the put that started the task returned is protected.
    writes = InFlightWrites()
    store = writes.guard(MemoryBlobStore())
    stored, release = trio.Event(), trio.Event()

    async def commit() -> None:
        with writing(store):
            await store.put(CAR_MH, CAR)
            stored.set()
            await release.wait()  # the swap in the registry, still to come

    async with trio.open_nursery() as nursery:
        with writes.write():  # the put that starts the writer
            nursery.start_soon(commit)
            await stored.wait()
        with writes.fence() as fence:
            assert fence.protects(CAR_MH)
        release.set()


async def test_the_tasks_a_write_starts_are_part_of_it() -> None:
    writes = InFlightWrites()
    store = writes.guard(MemoryBlobStore())

    async def put_chunk() -> None:
        await store.put(CAR_MH, CAR)

    with writes.fence() as fence:
        with writes.write():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(put_chunk)
        assert fence.protects(CAR_MH)
    with writes.write():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(put_chunk)
        with writes.fence() as later:
            assert later.protects(CAR_MH)  # the write that put it is still running
    with writes.fence() as after:
        assert not after.protects(CAR_MH)  # finished before this fence: roots name it
