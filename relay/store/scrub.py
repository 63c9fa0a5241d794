"""The background scrub: re-read every stored blob at a bounded rate, forever.

Storage rots quietly: a flipped bit in a pack is seen only when something reads that
blob, which for cold data may be never, until the one copy is needed. The scrub reads
each blob the store lists (``list_blobs``: what it holds durably) through the store's own
``get``, which hashes the bytes against the blob's multihash and, on a mismatch, makes the
store *forget* the blob (``relay.store.base``, "Self-healing"): reads of it then fail
cleanly, and the next put of the same bytes (a client uploading the file again) stores
them again and repairs every object that names them. ``relay fsck`` says which objects a
damaged blob belongs to; the scrub's job is only to find and forget, continuously.

Pacing. Each blob's bytes are paid for in time before the next read: after reading ``n``
bytes the scrub does not start another read before ``n / bytes_per_second`` seconds
after the previous one could start, so the average rate never exceeds the setting (one
read of a large blob may burst; chunks are 1 MiB by default). A pass over the store is
followed by a pause of at least ``PASS_PAUSE_SECONDS``, and the first pass starts
``FIRST_PASS_DELAY_SECONDS`` after the server does, so a server that restarts often, and
a short-lived one (a test), spends nothing on it.

Concurrency: the scrub is an ordinary reader. A blob deleted meanwhile is skipped
(``BlobNotFound``); one that compaction moves is re-looked-up by the store before it
concludes anything is damaged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import trio

from relay.store.base import BlobNotFound, CorruptBlob, StoredBlob

# The first pass waits this long after start: a restart loop must not scrub the same
# first blobs over and over, and most of a test suite's servers live less than this.
FIRST_PASS_DELAY_SECONDS = 60.0
# At least this long between passes: a small store is not re-read in a tight loop.
PASS_PAUSE_SECONDS = 60.0


class ScrubbableStore(Protocol):
    def list_blobs(self) -> AsyncIterator[StoredBlob]: ...

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ScrubStatistics:
    bytes_verified: int
    blobs_verified: int
    corrupt_found: int  # blobs found damaged (and forgotten by the store)
    passes_completed: int


class Scrubber:
    """Re-verifies ``store``'s blobs at ``bytes_per_second`` (see the module docstring)."""

    def __init__(self, store: ScrubbableStore, bytes_per_second: int) -> None:
        if bytes_per_second <= 0:
            raise ValueError("the scrub rate must be positive")
        self._store = store
        self._rate = bytes_per_second
        self._bytes = 0
        self._blobs = 0
        self._corrupt = 0
        self._passes = 0
        self._next_read_at = 0.0

    def statistics(self) -> ScrubStatistics:
        return ScrubStatistics(self._bytes, self._blobs, self._corrupt, self._passes)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Scrub forever: a pass, a pause, another pass."""
        task_status.started()
        await trio.sleep(FIRST_PASS_DELAY_SECONDS)
        while True:
            await self.scrub_pass()
            await trio.sleep(PASS_PAUSE_SECONDS)

    async def scrub_pass(self) -> None:
        """Read every blob the store lists once, at the configured rate."""
        async for blob in self._store.list_blobs():
            await trio.sleep_until(self._next_read_at)
            self._next_read_at = max(self._next_read_at, trio.current_time()) + (
                blob.size / self._rate
            )
            try:
                await self._store.get(blob.multihash)
            except BlobNotFound:
                continue  # deleted since it was listed
            except CorruptBlob:
                self._corrupt += 1  # the store forgot it: the next put repairs it
                continue
            self._bytes += blob.size
            self._blobs += 1
        self._passes += 1


async def serve_scrub(
    store: ScrubbableStore,
    bytes_per_second: int,
    *,
    task_status: trio.TaskStatus[Scrubber] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a ``Scrubber`` over ``store`` forever; ``nursery.start`` returns it (for its
    ``statistics()``)."""
    scrubber = Scrubber(store, bytes_per_second)
    task_status.started(scrubber)
    await scrubber.serve()
