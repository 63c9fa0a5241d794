"""Garbage collection: mark what the root set reaches, sweep the rest of the store.

Theory of operation
-------------------
1. **Fence.** Open a fence on the engine's writes in flight (``relay.bucket.inflight``)
   before reading anything: from here on every blob put, and every blob of a write that
   finishes, is protected from this collection.
2. **Roots.** Read the root set (``relay.bucket.roots``): open uploads' chunks, each
   bucket's current root, the commits within the history retention, the pins.
3. **Mark.** Walk every root (``relay.bucket.walk``, strict: one unreadable block ends the
   collection and nothing is swept, since the blobs under it would look unreachable) and
   turn the blocks reached into blobs: each raw chunk, and each CAR the registry says
   holds a reached block. The mark is a set of multihashes in memory, some 100 bytes per
   reachable blob: 100 MiB for a million blobs (1 TiB of 1 MiB chunks), fine at relay's
   scale; a bounded-memory mark (spilled to SQLite, or a Bloom filter for a first pass)
   is a later step.
4. **Sweep.** List the store (``BlobStore.list_blobs``). A blob is deleted only if it is
   not marked, is older than ``grace_seconds`` (so a write in flight in *any* process,
   whose blobs are all newer than that, is safe whatever its state), and no write in
   flight in this process put it (the fence; this covers a put that deduplicated against
   an old unreachable blob). Another process's put that deduplicates against an old
   blob restarts its age in a store that processes share (``relay.store.base``), and the
   store's delete is conditional on that age (``stored_before_ms``), so such a put is
   safe too, once it returned before the delete. For each batch the store deletes the
   blobs, then the registry forgets every row that names them
   (``Registry.forget_blobs``), except those of a blob put again meanwhile, whose commit
   records its rows again. A crash in between leaves rows naming blobs that no root
   reaches: never read, and harmless but for roundabout, which could redirect to such a
   blob until its bytes are put again.
5. **Reclaim.** ``store.reclaim_space()`` once (the disk store compacts its packs).

Rate. The background collection spends at most ``operations_per_second`` store
operations (blocks read while marking, blobs deleted) per second; ``relay gc`` runs
unbounded unless asked. ``dry_run`` does steps 1-4 without deleting: what it reports is
exactly what a real run would have deleted at that moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from relay.bucket.retention import DEFAULT_HISTORY_RETENTION_SECONDS
from relay.bucket.roots import RootSet, read_root_set
from relay.bucket.walk import Pacer, Walk, reachable_blobs
from relay.registry.base import now_ms
from relay.store.base import NOTHING_RECLAIMED, ReclaimReport, StoredBlob

if TYPE_CHECKING:
    from relay.bucket.engine import Engine

LOGGER: Final = logging.getLogger("relay.gc")

# Blobs forgotten by the registry per transaction, then deleted from the store.
SWEEP_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class GcConfig:
    """The ``[gc]`` settings (``relay.config``)."""

    # Past versions kept readable, and their blocks kept (relay.bucket.retention).
    history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS
    # A blob younger than this is never swept: longer than any upload takes to commit.
    grace_seconds: float = 3600.0
    # How often relay serve collects (0: never in the background).
    interval_seconds: float = 3600.0
    # Store operations per second the background collection may spend (0: unbounded).
    # 1,000 small reads or deletes a second is a few percent of a disk's or an S3
    # bucket's capacity: a collection of a million blobs takes under an hour.
    operations_per_second: float = 1000.0
    # What the disk store's background scrub re-reads per second (0: no scrub).
    scrub_bytes_per_second: int = 16 << 20


@dataclass(frozen=True, slots=True)
class GcReport:
    roots: int
    blobs_marked: int
    blobs_listed: int
    blobs_swept: int  # deleted (or, in a dry run, that would have been)
    bytes_swept: int
    blobs_kept_young: int  # unreachable but within the grace
    blobs_kept_in_flight: int  # unreachable but put by a write in flight
    reclaimed: ReclaimReport
    dry_run: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class GcProgress:
    """What a progress display is told: the phase and how far it is."""

    phase: str  # "mark" or "sweep"
    done: int


async def mark_reachable(
    engine: Engine,
    root_set: RootSet,
    pacer: Pacer | None = None,
    progress: Callable[[GcProgress], object] | None = None,
) -> set[bytes]:
    """Every blob ``root_set`` reaches (strict: an unreadable block raises)."""
    walk = Walk(
        engine.blocks,
        engine.store,
        pacer or Pacer(0),
        progress=None if progress is None else lambda n: progress(GcProgress("mark", n)),
    )
    for root in root_set.roots:
        await walk.walk(root)
    return await reachable_blobs(walk, engine.registry, list(root_set.upload_chunks))


async def collect_garbage(
    engine: Engine,
    config: GcConfig,
    *,
    dry_run: bool = False,
    operations_per_second: float = 0.0,
    progress: Callable[[GcProgress], object] | None = None,
) -> GcReport:
    """One collection over ``engine``'s store and registry (see the module docstring)."""
    started = time.perf_counter()
    pacer = Pacer(operations_per_second)
    registry, store = engine.registry, engine.store
    with engine.in_flight.fence() as fence:
        root_set = await read_root_set(
            registry, history_retention_seconds=config.history_retention_seconds
        )
        marked = await mark_reachable(engine, root_set, pacer, progress)

        old_before_ms = now_ms() - int(config.grace_seconds * 1000)
        counts = {"listed": 0, "young": 0, "in_flight": 0, "swept": 0, "bytes": 0}
        batch: list[StoredBlob] = []

        async def sweep(blobs: list[StoredBlob]) -> None:
            deleted: list[bytes] = []
            for blob in blobs:
                await pacer.spend()
                # Decided with no checkpoint before the delete begins: a put that began
                # before this line is in the fence (see relay.bucket.inflight).
                if fence.protects(blob.multihash):
                    counts["in_flight"] += 1
                    continue
                if not dry_run:
                    # Only if no process stored it again since it was listed (a put that
                    # deduplicated against it, in a process this fence cannot see).
                    if not await store.delete(blob.multihash, stored_before_ms=old_before_ms):
                        counts["young"] += 1
                        continue
                    deleted.append(blob.multihash)
                counts["swept"] += 1
                counts["bytes"] += blob.size
            # A put that began after its delete stored the blob again, and its commit
            # records the rows again: those are not forgotten.
            forget = [mh for mh in deleted if not fence.protects(mh)]
            if forget:
                await registry.forget_blobs(forget)
            if progress is not None:
                progress(GcProgress("sweep", counts["swept"]))

        async for blob in store.list_blobs():
            counts["listed"] += 1
            if blob.multihash in marked:
                continue
            if blob.stored_at_ms > old_before_ms:
                counts["young"] += 1
                continue
            batch.append(blob)
            if len(batch) >= SWEEP_BATCH:
                await sweep(batch)
                batch = []
        await sweep(batch)
    reclaimed = NOTHING_RECLAIMED if dry_run else await store.reclaim_space()
    report = GcReport(
        roots=len(root_set.roots),
        blobs_marked=len(marked),
        blobs_listed=counts["listed"],
        blobs_swept=counts["swept"],
        bytes_swept=counts["bytes"],
        blobs_kept_young=counts["young"],
        blobs_kept_in_flight=counts["in_flight"],
        reclaimed=reclaimed,
        dry_run=dry_run,
        seconds=time.perf_counter() - started,
    )
    return report


async def serve_gc(
    engine: Engine,
    config: GcConfig,
    *,
    collects: bool = True,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Collect every ``interval_seconds``, at the configured rate, until cancelled or
    ``shutdown`` is set (a collection under way is then abandoned: each delete is whole,
    and the next collection finishes the work). A failed collection is logged and the
    next one tried at the next interval.

    With ``collects=False`` (every worker but the one that collects) it only calls
    ``store.reclaim_space()`` at each interval: a store gives a collector in another
    process no way into the pack this process is still writing (the disk store's pack in
    progress), and this is how that pack, once mostly garbage, is sealed and compacted."""
    task_status.started()
    if config.interval_seconds <= 0:
        return
    async with trio.open_nursery() as nursery:
        if shutdown is not None:

            async def stop_on_shutdown() -> None:
                await shutdown.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_shutdown)
        if collects:
            await _collect_every_interval(engine, config)
        else:
            await _reclaim_every_interval(engine, config)


async def _reclaim_every_interval(engine: Engine, config: GcConfig) -> None:
    while True:
        await trio.sleep(config.interval_seconds)
        try:
            reclaimed = await engine.store.reclaim_space()
        except Exception:
            LOGGER.exception(
                "reclaiming space failed; trying again in %gs", config.interval_seconds
            )
            continue
        if reclaimed.bytes_freed:
            LOGGER.info("reclaimed %d bytes", reclaimed.bytes_freed)


async def _collect_every_interval(engine: Engine, config: GcConfig) -> None:
    while True:
        await trio.sleep(config.interval_seconds)
        try:
            report = await collect_garbage(
                engine, config, operations_per_second=config.operations_per_second
            )
        except Exception:
            LOGGER.exception(
                "garbage collection failed; the next one runs in %gs", config.interval_seconds
            )
            continue
        LOGGER.info(
            "garbage collection: %d roots, %d blobs reachable, %d of %d swept (%d bytes),"
            " %d kept for the grace, %d in flight; reclaimed %d bytes in %.1fs",
            report.roots,
            report.blobs_marked,
            report.blobs_swept,
            report.blobs_listed,
            report.bytes_swept,
            report.blobs_kept_young,
            report.blobs_kept_in_flight,
            report.reclaimed.bytes_freed,
            report.seconds,
        )
