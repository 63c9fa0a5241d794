"""The per-bucket writer: a pipelined group commit.

Theory of operation. Every change to a bucket (put, delete, the bucket's own deletion) is
a ``Mutation`` submitted to the bucket's one writer, and the submitter waits for its
commit. Bodies were chunked and stored before submission, in parallel and without locks;
only the small metadata step is serialised here.

The writer runs two stages joined by a channel of one slot:

1. *apply* takes the first queued mutation and everything else already queued (up to
   ``max_batch``), decides each mutation's precondition (and computes each update, such
   as new tags on the object as it is) against the state the batch has reached so far,
   and applies the accepted ones to the MST in one pure ``apply`` on top
   of the *head* root (the newest root applied, committed or not). The batch's new MST
   nodes and manifests become one commit CAR, and the head moves to the new root.
2. *commit* writes that CAR to the blob store, calls ``store.sync()`` once (which makes
   every chunk, index CAR and commit CAR put so far durable), swaps the bucket's root in
   the registry (compare-and-swap on the version, block locations and the blobs the
   batch makes reachable, ``relay.bucket.reach``, in the same transaction), publishes
   the new root to readers, and only then wakes each waiter with its own result.

While batch N is being committed, batch N+1 is applied on top of N's root (pipelining);
commits happen in order because one task commits.

Several processes (workers, hosts) may write one bucket, each with its own writer, so the
registry's compare-and-swap on the bucket's version decides. A commit is optimistic
first: put, sync, swap. One whose swap loses (``CommitConflict``: another process
committed first) takes the bucket's commit lock (``Registry.hold_bucket``: SQLite's write
lock, a row lock in PostgreSQL), adopts the bucket's current root, *rebases* the batch —
the same mutations applied again on top of it, preconditions and updates decided again
against the new state, in the same order — and commits under the lock, where it cannot
lose. (Without the lock the loser starves: the winner's next batch is already applied on
the root it just committed, so it reaches the registry first every time.) A batch
applied on a root that is no longer the committed one (the batch before it was rebased or
failed) is rebased before it commits, so one failure costs its own waiters only. Verdicts
are confirmed too: a batch that changes nothing (deletes of absent keys, refused
preconditions) is acknowledged only once the registry confirms its base root is still the
bucket's root. So every acknowledged effect — and every 412 — was decided against the
bucket's state at its commit, and each bucket's commit log is one line whatever the
number of writers.

N concurrent writes therefore cost one fsync round and one registry transaction per
batch, not per object: that is what makes ``aws s3 sync`` of many small files fast.
The writer retires after ``idle_seconds`` without work; the next submission starts a new
one. Readers never wait for the writer: they read the last *committed* root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import trio

from relay.bucket.blocks import BlockReader
from relay.bucket.errors import BucketNotEmpty, CommitAborted, EngineError, NoSuchBucket
from relay.bucket.inflight import writing
from relay.bucket.manifest import Manifest
from relay.ipld import multihash
from relay.ipld.block import Block
from relay.ipld.car import CarBuilder
from relay.ipld.cid import CID
from relay.mst import EMPTY_NODE
from relay.mst import apply as mst_apply
from relay.mst import get as mst_get
from relay.registry.base import (
    BlockLocation,
    BucketMissing,
    CommitConflict,
    CommitRecord,
    Reach,
    Registry,
)
from relay.store.base import BlobStore, mark_commit_writer

# A batch of a thousand small objects makes a commit CAR of a few hundred KiB and keeps
# the apply step well under 100 ms, so a full batch never stalls the pipeline for long.
DEFAULT_MAX_BATCH: Final = 1000
DEFAULT_IDLE_SECONDS: Final = 30.0
PIPELINE_DEPTH: Final = 2
# After losing a compare-and-swap, a writer commits under the bucket's commit lock for
# this long before it tries the optimistic path again.
CONTENDED_SECONDS: Final = 1.0

Precondition = Callable[[Manifest | None], None]
# A change computed from the key's current manifest at the moment the writer applies it
# (tagging: the object as it is then, with new tags). It raises an ``EngineError`` to
# refuse (e.g. ``NoSuchKey``); that refusal is the mutation's result, like a precondition's.
Update = Callable[[Manifest | None], Manifest]


@dataclass(eq=False)
class Mutation:
    """One change to one key. ``manifest`` None means delete, unless ``update`` is set:
    then the writer computes ``manifest`` (and ``block``) from the key's state in the order
    it applies mutations, so a read-modify-write is serialised with every other write to
    the key, as S3 serialises them, instead of racing them. ``body_parts``: the blobs
    under the manifest's body when they are new to the registry (``relay.bucket.reach``)."""

    key: bytes
    manifest: Manifest | None
    block: Block | None = None
    locations: tuple[BlockLocation, ...] = ()
    precondition: Precondition | None = None
    update: Update | None = None
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None
    version: int = -1
    body_parts: tuple[bytes, ...] = ()

    async def wait(self) -> int:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.version

    def finish(self, *, version: int = -1, error: BaseException | None = None) -> None:
        self.version = version
        self.error = error
        self.done.set()


@dataclass(eq=False)
class DropBucket:
    """Delete the bucket itself once every earlier mutation is committed, if it is empty."""

    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None

    async def wait(self) -> None:
        await self.done.wait()
        if self.error is not None:
            raise self.error


@dataclass(eq=False)
class _Batch:
    base: CID  # the root the batch was applied on top of
    mutations: list[Mutation]  # as submitted, in order: what a rebase applies again
    root: CID
    accepted: list[Mutation]
    rejected: list[Mutation]
    car: bytes | None
    locations: list[BlockLocation]
    nodes: list[CID]
    deletes: int
    reach: Reach


@dataclass(slots=True)
class CommitTotals:
    """What every writer of an engine committed, summed as it happens (writers retire, so
    their own statistics come and go; these stay): for the metrics."""

    batches: int = 0
    mutations: int = 0
    seconds: float = 0.0
    # Batches applied again because another process committed the bucket first.
    rebases: int = 0
    # Compare-and-swaps lost (or no-op verdicts found stale): each then committed under
    # the bucket's commit lock.
    conflicts: int = 0


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    queued: int
    batches_committed: int
    mutations_committed: int
    largest_batch: int
    committed_version: int


class BucketWriter:
    def __init__(
        self,
        name: str,
        *,
        root: CID,
        version: int,
        store: BlobStore,
        registry: Registry,
        blocks: BlockReader,
        on_commit: Callable[[str, CID, int], None],
        on_retire: Callable[[BucketWriter], None],
        max_batch: int = DEFAULT_MAX_BATCH,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        totals: CommitTotals | None = None,
    ) -> None:
        self.name = name
        self._totals = CommitTotals() if totals is None else totals
        self._store = store
        self._registry = registry
        self._blocks = blocks
        self._on_commit = on_commit
        self._on_retire = on_retire
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self.committed_root = root
        self.committed_version = version
        self._head = root
        # Nodes of batches rebased away or failed. The batch applied behind one may still
        # be reading them (its apply began on the old head), so they are released only
        # when the next batch's commit is done, by which time that apply has finished.
        self._stale_nodes: list[CID] = []
        self._contended_until = float("-inf")
        # One batch committing and one applied ahead of it: that is the pipeline.
        self._pipeline_slots = trio.Semaphore(PIPELINE_DEPTH)
        # Submitters block on a full queue: that is the backpressure on writers.
        self._submit, self._queue = trio.open_memory_channel[Mutation | DropBucket](max_batch)
        self._batches_committed = 0
        self._mutations_committed = 0
        self._largest_batch = 0

    async def submit(self, item: Mutation | DropBucket) -> None:
        """Queue ``item``; raises ``trio.BrokenResourceError`` if the writer retired."""
        await self._submit.send(item)

    def stop_taking(self) -> None:
        """Take no more submissions (the bucket was deleted and created again elsewhere):
        a submitter goes to a new writer; what is queued is still committed (rebased on
        the bucket as it is), then this writer retires."""
        self._submit.close()

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            self._queue.statistics().current_buffer_used,
            self._batches_committed,
            self._mutations_committed,
            self._largest_batch,
            self.committed_version,
        )

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send_batch, receive_batch = trio.open_memory_channel[_Batch | DropBucket](1)
        mark_commit_writer()  # its commits may spend the store's reserve (a full disk)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_commits, receive_batch)
                task_status.started()
                async with send_batch:
                    await self._serve_applies(send_batch)
        finally:
            self._close_queue(CommitAborted("the bucket's writer stopped; retry"))

    def _close_queue(self, error: EngineError) -> list[Mutation | DropBucket]:
        """Stop taking submissions; fail what was queued but never taken.

        Synchronous, so nothing can slip in between the drain and the close: a submitter
        that arrives later gets ``BrokenResourceError`` and goes to a new writer.
        """
        leftovers: list[Mutation | DropBucket] = []
        while True:
            try:
                leftovers.append(self._queue.receive_nowait())
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                break
        self._queue.close()
        for item in leftovers:
            if isinstance(item, Mutation):
                item.finish(error=error)
            else:
                item.error = error
                item.done.set()
        return leftovers

    # -- stage 1: apply ------------------------------------------------------------------

    async def _serve_applies(self, send_batch: trio.MemorySendChannel[_Batch | DropBucket]) -> None:
        while True:
            with trio.move_on_after(self._idle_seconds) as idle:
                try:
                    first = await self._queue.receive()
                except trio.EndOfChannel:  # stop_taking: drained
                    self._on_retire(self)
                    return
            if idle.cancelled_caught:
                if self._pipeline_slots.value == PIPELINE_DEPTH:  # nothing in flight
                    # Retire: the engine forgets this writer first, so the next
                    # submission starts a new one; anything already queued is retried.
                    self._on_retire(self)
                    self._close_queue(CommitAborted("the bucket's writer retired; retry"))
                    return
                continue
            item: Mutation | DropBucket | None = first
            while item is not None:
                # Take the batch only once the commit stage can accept it: while the
                # previous batch commits, submissions pile up in the queue, so the next
                # batch is as large as the commit was slow (group commit that adapts to
                # load). The commit stage releases the slot when it is done with a batch.
                await self._pipeline_slots.acquire()
                if isinstance(item, DropBucket):
                    await send_batch.send(item)
                    # Nothing after a bucket's deletion may be applied before it is decided.
                    await item.done.wait()
                    if item.error is None:
                        self._close_queue(NoSuchBucket(self.name))
                        return
                    item = self._receive_or_none()
                    continue
                batch, item = self._take_batch(item)
                await self._send_applied(send_batch, batch)

    def _receive_or_none(self) -> Mutation | DropBucket | None:
        try:
            return self._queue.receive_nowait()
        except trio.WouldBlock:
            return None

    def _take_batch(self, first: Mutation) -> tuple[list[Mutation], DropBucket | None]:
        """``first`` and whatever is queued behind it, up to a bucket deletion or the limit."""
        batch = [first]
        while len(batch) < self._max_batch:
            item = self._receive_or_none()
            if item is None:
                break
            if isinstance(item, DropBucket):
                return batch, item
            batch.append(item)
        return batch, None

    async def _send_applied(
        self, send_batch: trio.MemorySendChannel[_Batch | DropBucket], batch: list[Mutation]
    ) -> None:
        try:
            applied = await self._apply(batch)
        except Exception as exc:
            self._pipeline_slots.release()
            for mutation in batch:
                mutation.finish(error=exc)
            return
        await send_batch.send(applied)

    async def _current(
        self, root: CID, key: bytes, staged: dict[bytes, Mutation]
    ) -> Manifest | None:
        if key in staged:
            return staged[key].manifest
        value = await self._blocks.run_with_nodes(lambda load: mst_get(root, key, load))
        return None if value is None else await self._blocks.manifest(value)

    async def _apply(self, batch: list[Mutation]) -> _Batch:
        base = self._head
        applied = await self._apply_on(base, batch)
        # Unless the commit stage moved the head meanwhile (a rebase or a failure made
        # ``base`` stale; this batch will be rebased when it commits), the next batch
        # builds on this one.
        if self._head == base:
            self._head = applied.root
        return applied

    async def _apply_on(self, root: CID, batch: list[Mutation]) -> _Batch:
        """Decide and apply ``batch`` on top of ``root``: pure but for the block reader's
        caches (new nodes pinned until committed or dropped). Run again by a rebase."""
        staged: dict[bytes, Mutation] = {}
        accepted: list[Mutation] = []
        rejected: list[Mutation] = []
        for mutation in batch:
            mutation.error = None
            if mutation.precondition is not None or mutation.update is not None:
                current = await self._current(root, mutation.key, staged)
                try:
                    if mutation.precondition is not None:
                        mutation.precondition(current)
                    if mutation.update is not None:
                        mutation.manifest = mutation.update(current)
                        mutation.block = mutation.manifest.to_block()
                except EngineError as exc:
                    mutation.error = exc
                    rejected.append(mutation)
                    continue
            staged[mutation.key] = mutation
            accepted.append(mutation)
        changes = [(key, None if m.block is None else m.block.cid) for key, m in staged.items()]
        result = await self._blocks.run_with_nodes(lambda load: mst_apply(root, changes, load))
        car: bytes | None = None
        locations: list[BlockLocation] = []
        nodes = list(result.new_nodes)
        if result.root != root:
            builder = CarBuilder([result.root])
            for cid, node in result.new_nodes.items():
                builder.add(cid, node.to_bytes())
            for mutation in staged.values():
                if mutation.block is not None:
                    builder.add(mutation.block.cid, mutation.block.data)
            car = builder.to_bytes()
            car_mh = multihash.sha2_256(car)
            locations = [
                BlockLocation(loc.cid.multihash, car_mh, loc.offset, loc.length)
                for loc in builder.locations
            ]
        for mutation in accepted:
            locations.extend(mutation.locations)
        self._blocks.pin_nodes(result.new_nodes)
        for mutation in staged.values():
            if mutation.block is not None and mutation.manifest is not None:
                self._blocks.remember_manifest(mutation.block.cid, mutation.manifest)
        deletes = sum(1 for m in staged.values() if m.manifest is None)
        reach = batch_reach(staged.values())
        return _Batch(
            root, batch, result.root, accepted, rejected, car, locations, nodes, deletes, reach
        )

    # -- stage 2: commit -----------------------------------------------------------------

    async def _serve_commits(
        self, receive_batch: trio.MemoryReceiveChannel[_Batch | DropBucket]
    ) -> None:
        async with receive_batch:
            async for item in receive_batch:
                try:
                    if isinstance(item, DropBucket):
                        await self._drop_bucket(item)
                    else:
                        # Garbage collection sees the commit CAR until the commit names it.
                        with writing(self._store):
                            await self._commit(item)
                finally:
                    self._pipeline_slots.release()

    def _adopt(self, root: CID, version: int) -> None:
        """Take the bucket's committed root as the registry has it (another process moved
        it since this writer last committed)."""
        self.committed_root = root
        self.committed_version = version
        self._on_commit(self.name, root, version)

    async def _catch_up(self) -> None:
        record = await self._registry.get_bucket(self.name)
        if record is None:
            raise NoSuchBucket(self.name)
        self._adopt(record.root, record.version)

    async def _rebase(self, batch: _Batch) -> _Batch:
        self._stale_nodes.extend(batch.nodes)
        self._totals.rebases += 1
        return await self._apply_on(self.committed_root, batch.mutations)

    async def _commit(self, batch: _Batch) -> None:
        stale, self._stale_nodes = self._stale_nodes, []
        try:
            await self._commit_one(batch)
        finally:
            self._blocks.unpin_nodes(stale, committed=False)

    async def _commit_one(self, batch: _Batch) -> None:
        applied_root = batch.root
        try:
            batch, record = await self._commit_until_won(batch)
        except Exception as exc:
            self._stale_nodes.extend(batch.nodes)
            for mutation in batch.mutations:
                mutation.finish(error=exc)
            # Whatever was applied on top of this batch builds on nodes just dropped: the
            # next batch starts from the committed root (the one in flight is rebased).
            self._head = self.committed_root
            return
        if record is not None:
            self.committed_root = batch.root
            self.committed_version = record.version
            self._blocks.unpin_nodes(batch.nodes, committed=True)
            self._on_commit(self.name, batch.root, record.version)
            self._batches_committed += 1
            self._mutations_committed += len(batch.accepted)
            self._largest_batch = max(self._largest_batch, len(batch.mutations))
            self._totals.batches += 1
            self._totals.mutations += len(batch.accepted)
        else:  # nothing changed (deletes of absent keys, all refused): nothing to unpin
            self._stale_nodes.extend(batch.nodes)
        if batch.root != applied_root:
            # Rebased: whatever was applied on top of the batch as first applied is stale;
            # the next batch starts from the committed root.
            self._head = self.committed_root
        for mutation in batch.rejected:
            mutation.finish(error=mutation.error)  # its precondition's verdict, now confirmed
        for mutation in batch.accepted:
            mutation.finish(version=self.committed_version)

    async def _commit_until_won(self, batch: _Batch) -> tuple[_Batch, CommitRecord | None]:
        """Commit ``batch``, rebased as needed; None when it changes nothing and the
        registry confirms the root it was decided on is still the bucket's root.

        Optimistic first: put, sync, compare-and-swap. A writer that loses catches up,
        rebases and stores its CAR, then swaps under the bucket's commit lock
        (``Registry.hold_bucket``), rebasing there only if another commit slipped in, so
        it cannot lose twice: without the lock, the winner (whose next batch is already
        applied on the root it just committed) would win every race against a writer
        that must first catch up and rebase, and the loser would starve."""
        if trio.current_time() >= self._contended_until:
            if batch.base != self.committed_root:
                batch = await self._rebase(batch)
            if batch.car is None:
                head = await self._registry.bucket_head(self.name)
                if head is None:
                    raise NoSuchBucket(self.name)
                if head.version == self.committed_version:
                    return batch, None
            else:
                try:
                    return batch, await self._put_and_swap(batch)
                except CommitConflict:
                    pass
            self._totals.conflicts += 1
            # Another process writes this bucket now: for a while, commit under the lock
            # straight away rather than pay for a swap that is likely to lose.
            self._contended_until = trio.current_time() + CONTENDED_SECONDS
        # Catch up, rebase and store the CAR before taking the lock, so the lock is held
        # only for the swap itself unless yet another commit slipped in meanwhile: a host
        # that dies or is cut off holding it stalls the bucket's other writers until the
        # registry drops it (PostgreSQL: the network timeout).
        head = await self._registry.bucket_head(self.name)
        if head is None:
            raise NoSuchBucket(self.name)
        if head.version != self.committed_version:
            self._adopt(head.root, head.version)
        if batch.base != self.committed_root:
            batch = await self._rebase(batch)
        car_mh = None if batch.car is None else await self._put_car(batch.car)
        try:
            async with self._registry.hold_bucket(self.name) as current:
                if current.version != self.committed_version:  # lost the race to the lock
                    self._adopt(current.root, current.version)
                    batch = await self._rebase(batch)
                    car_mh = None if batch.car is None else await self._put_car(batch.car)
                if batch.car is None:
                    return batch, None
                assert car_mh is not None
                return batch, await self._swap(batch, car_mh)
        except BucketMissing:
            raise NoSuchBucket(self.name) from None

    async def _put_car(self, car: bytes) -> bytes:
        car_mh = multihash.sha2_256(car)
        await self._store.put(car_mh, car)
        await self._store.sync()
        return car_mh

    async def _swap(self, batch: _Batch, car_mh: bytes) -> CommitRecord:
        return await self._registry.commit(
            self.name,
            expected_version=self.committed_version,
            root=batch.root,
            car=car_mh,
            locations=batch.locations,
            puts=len(batch.accepted) - batch.deletes,
            deletes=batch.deletes,
            reach=batch.reach,
        )

    async def _put_and_swap(self, batch: _Batch) -> CommitRecord:
        assert batch.car is not None
        started = time.perf_counter()
        record = await self._swap(batch, await self._put_car(batch.car))
        self._totals.seconds += time.perf_counter() - started
        return record

    async def _drop_bucket(self, request: DropBucket) -> None:
        try:
            while True:
                if self._head != self.committed_root:
                    raise BucketNotEmpty(self.name)
                await self._catch_up()  # emptiness is decided on the bucket as it is now
                self._head = self.committed_root
                if self.committed_root != EMPTY_NODE.cid:
                    raise BucketNotEmpty(self.name)
                try:
                    await self._registry.delete_bucket(
                        self.name, expected_version=self.committed_version
                    )
                    break
                except CommitConflict:
                    continue
        except Exception as exc:
            request.error = exc
            request.done.set()
            return
        self._on_retire(self)
        request.done.set()


def batch_reach(staged: Iterable[Mutation]) -> Reach:
    """What the batch's surviving writes make reachable (a key written twice in one batch
    keeps only its last write, so only that one is recorded)."""
    written = [(m.manifest.body.multihash, m.body_parts) for m in staged if m.manifest is not None]
    return Reach(
        tuple(body for body, _ in written),
        tuple((blob, body) for body, parts in written for blob in parts),
    )
