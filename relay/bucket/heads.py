"""Each bucket's committed head, as this process knows it, and the bucket's one writer.

Theory of operation. Every read starts from a bucket's committed root and every write
goes to the bucket's ``BucketWriter`` (``relay.bucket.writer``). ``BucketHeads`` keeps,
per bucket this process has touched, the bucket's registry record, the newest root it
knows committed, and the writer while one runs.

Freshness. Several processes (workers, hosts) may share the registry, so a root this
process remembers can be old: another process may have committed since. ``current``
therefore asks the registry's ``bucket_head`` on every call (SQLite answers from a cache
it proves current with one ``PRAGMA data_version``, a few microseconds; PostgreSQL with
one query) and adopts a newer version. So a read that starts after any process
acknowledged a write sees it (read-after-write across processes); this process's own
commits arrive through the writer's ``on_commit`` at once. A bucket deleted elsewhere is
forgotten (``NoSuchBucket``); one deleted and created again elsewhere (a different
``created_ms``) is a new bucket: the old writer takes no more work and retires.

Writers. The first write to a bucket starts its writer in the engine's nursery (one
start even when many writes arrive at once); an idle writer retires and the next write
starts a new one (``submit`` retries on a writer that retired as it was reached).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from relay.bucket.blocks import BlockReader
from relay.bucket.errors import NoSuchBucket
from relay.bucket.writer import (
    BucketWriter,
    CommitTotals,
    DropBucket,
    Mutation,
    WriterStatistics,
)
from relay.ipld.cid import CID
from relay.registry.base import BucketRecord, Registry
from relay.store.base import BlobStore


@dataclass
class BucketHead:
    record: BucketRecord
    root: CID
    version: int
    writer: BucketWriter | None = None
    writer_ready: trio.Event | None = None


class BucketHeads:
    def __init__(
        self,
        store: BlobStore,
        registry: Registry,
        blocks: BlockReader,
        nursery: trio.Nursery,
        *,
        max_batch: int,
        idle_seconds: float,
    ) -> None:
        self._store = store
        self._registry = registry
        self._blocks = blocks
        self._nursery = nursery
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._heads: dict[str, BucketHead] = {}
        # What every writer committed, summed as it happens (writers come and go).
        self.totals = CommitTotals()

    async def current(self, bucket: str) -> BucketHead:
        """The bucket as committed now: never older than any write acknowledged (by any
        process sharing the registry) before this call."""
        record = await self._registry.bucket_head(bucket)
        if record is None:
            self.forget(bucket)
            raise NoSuchBucket(bucket)
        head = self._heads.get(bucket)
        if head is not None and head.record.created_ms != record.created_ms:
            self.forget(bucket)  # deleted and created again by another process
            head = None
        if head is None:
            head = self._heads.setdefault(bucket, BucketHead(record, record.root, record.version))
        if record.version > head.version:
            head.root = record.root
            head.version = record.version
        return head

    def forget(self, bucket: str) -> None:
        head = self._heads.pop(bucket, None)
        if head is not None and head.writer is not None:
            head.writer.stop_taking()

    async def submit(self, bucket: str, item: Mutation | DropBucket) -> None:
        """Queue ``item`` with the bucket's writer (started if none runs)."""
        while True:
            writer = await self._writer(bucket)
            try:
                await writer.submit(item)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # That writer retired (or its bucket was deleted) as we reached it.
                self._on_retire(writer)
                if bucket not in self._heads:
                    raise NoSuchBucket(bucket) from None

    def loaded(self) -> int:
        return len(self._heads)

    def writer_statistics(self) -> dict[str, WriterStatistics]:
        return {
            name: head.writer.statistics()
            for name, head in self._heads.items()
            if head.writer is not None
        }

    # -- writer lifecycle ----------------------------------------------------------------

    def _on_commit(self, bucket: str, root: CID, version: int) -> None:
        head = self._heads.get(bucket)
        if head is not None and version > head.version:
            head.root = root
            head.version = version

    def _on_retire(self, writer: BucketWriter) -> None:
        head = self._heads.get(writer.name)
        if head is not None and head.writer is writer:
            head.writer = None

    async def _writer(self, bucket: str) -> BucketWriter:
        # The head as last seen is enough here: a writer learns of newer commits from the
        # registry's compare-and-swap (and submitters checked freshness already).
        head = self._heads.get(bucket) or await self.current(bucket)
        while head.writer is None:
            if head.writer_ready is not None:
                await head.writer_ready.wait()
                continue
            head.writer_ready = trio.Event()
            try:
                writer = BucketWriter(
                    bucket,
                    root=head.root,
                    version=head.version,
                    store=self._store,
                    registry=self._registry,
                    blocks=self._blocks,
                    on_commit=self._on_commit,
                    on_retire=self._on_retire,
                    max_batch=self._max_batch,
                    idle_seconds=self._idle_seconds,
                    totals=self.totals,
                )
                await self._nursery.start(writer.serve)
                head.writer = writer
            finally:
                head.writer_ready.set()
                head.writer_ready = None
        return head.writer
