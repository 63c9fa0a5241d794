"""What every backend does the same way: shared puts, argument checks, statistics.

Single flight. Two requests that carry the same chunk (a file synced twice, empty files,
a copy made while the original uploads) put the same multihash at once. The first put
does the work; the others wait for it and take its outcome. If it stored the blob they
are done (counted as deduplicated); if it failed, they try again themselves, one at a time.
A waiter never re-checks a cache that a sync may have emptied in the meantime, so N
identical puts cost one write and N wake-ups, not N writes or N² wake-ups.

Known present is a hint, not a truth (``UpstreamPuts``). An upstream can lose an object
behind relay's back, so a put of a blob the store believes present first asks the
upstream (``confirm``: a HEAD, a ``blob/allocate``) and uploads it again if the answer is
no; a blob not known present is uploaded straight away (new data, the common case, pays
no extra round trip). A read that finds a blob missing or corrupt drops it from the set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

from relay.store.base import BlobRead, StoreStatistics

# Reads one ``get_each`` keeps in flight: enough to hide an upstream's latency.
GET_EACH_CONCURRENCY = 16

Get = Callable[..., Awaitable[bytes]]


class _Flight:
    __slots__ = ("done", "succeeded")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.succeeded = False


class SingleFlight:
    """At most one write in progress per multihash; concurrent callers share it."""

    def __init__(self) -> None:
        self._flights: dict[bytes, _Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, mh: bytes) -> bool:
        return mh in self._flights

    async def run(self, mh: bytes, write: Callable[[], Awaitable[bool]]) -> bool:
        """Run ``write`` unless a write of ``mh`` is in progress; then share its outcome.

        ``write`` returns True when it stored the blob, False when it found it present.
        The result is True only for the caller whose own ``write`` stored the blob.
        """
        while (flight := self._flights.get(mh)) is not None:
            await flight.done.wait()
            if flight.succeeded:
                return False
        flight = self._flights[mh] = _Flight()
        try:
            stored = await write()
            flight.succeeded = True
            return stored
        finally:
            del self._flights[mh]
            flight.done.set()


class UpstreamPuts:
    """Put bookkeeping for a store whose blobs live upstream (an S3 bucket, a piri node):
    the blobs known to be there, and single-flight uploads of the others."""

    def __init__(self, counters: StoreCounters) -> None:
        self.present: set[bytes] = set()
        self._flights = SingleFlight()
        self._counters = counters

    async def put(
        self,
        mh: bytes,
        size: int,
        upload: Callable[[], Awaitable[None]],
        confirm: Callable[[], Awaitable[bool]],
    ) -> None:
        """Upload ``mh`` unless the upstream confirms it holds it, or it is being uploaded.

        ``confirm`` is asked only for a blob known present, and returns whether the
        upstream still holds it; a no drops the blob from the set and uploads it.
        """

        async def once() -> bool:
            if mh in self.present:
                if await confirm():
                    return False
                self.present.discard(mh)
            await upload()
            self.present.add(mh)
            self._counters.stored(size)
            return True

        if not await self._flights.run(mh, once):
            self._counters.deduplicated += 1

    def forget(self, mh: bytes) -> None:
        """A read found ``mh`` missing or corrupt upstream: the next put uploads it."""
        if mh in self.present:
            self.present.discard(mh)
            self._counters.forgotten += 1


async def get_each(get: Get, reads: Sequence[BlobRead]) -> list[bytes]:
    """``get_many`` for a backend with nothing to batch: the reads run concurrently.

    The first read that fails cancels the others and is raised as itself.
    """
    results: list[bytes] = [b""] * len(reads)
    limiter = trio.CapacityLimiter(GET_EACH_CONCURRENCY)
    failures: list[Exception] = []

    async def one(index: int, read: BlobRead, cancel_scope: trio.CancelScope) -> None:
        try:
            async with limiter:
                results[index] = await get(read.blob, read.offset, read.length, expect=read.expect)
        except Exception as exc:
            failures.append(exc)
            cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index, read in enumerate(reads):
            nursery.start_soon(one, index, read, nursery.cancel_scope)
    if failures:
        raise failures[0]
    return results


def check_upstream_settings(endpoint: str, max_connections: int, max_attempts: int) -> None:
    """What the s3 and piri stores' settings share: an http(s) endpoint, sane limits."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
    if parts.query or parts.fragment:
        raise ValueError("endpoint must not carry a query or fragment")
    if max_connections < 1 or max_attempts < 1:
        raise ValueError("max_connections and max_attempts must be at least 1")


def check_range_arguments(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("negative offset or length")


def check_partial_read(offset: int, expect: bytes | None) -> None:
    """A read that starts inside a blob can only be verified against the block it holds."""
    if offset > 0 and expect is None:
        raise ValueError("a partial read must name the multihash of the block it holds")


@dataclass(slots=True)
class StoreCounters:
    """The running totals behind ``BlobStore.statistics()``."""

    written: int = 0
    bytes: int = 0
    deduplicated: int = 0
    syncs: int = 0
    reads: int = 0
    forgotten: int = 0

    def stored(self, size: int) -> None:
        self.written += 1
        self.bytes += size

    def snapshot(self) -> StoreStatistics:
        return StoreStatistics(
            self.written, self.bytes, self.deduplicated, self.syncs, self.reads, self.forgotten
        )
