"""The memory budget for bodies in flight: one pool of chunk buffers for the whole server.

Theory of operation. An upload fills a chunk-sized buffer; a full one is hashed and put
while the upload fills the next. Each upload alone is bounded (a few chunks), but without
a shared bound memory grows with the number of concurrent uploads: fifty parts in flight
held some 400 MiB. The pool is a budget of ``capacity × chunk_size`` bytes. An upload
takes a buffer (``chunk_size`` of the budget) before it reads its next chunk and gives it
back when that chunk's put has finished; while the budget is spent it waits in line (first
come, first served) without reading its body, so the wait reaches the client as TCP
backpressure, never as memory. Buffers are reused: a steady upload allocates nothing.

Fairness. Each upload fills its chunk through a ``ChunkLease``. A slow client must not sit
on a pooled 1 MiB buffer it fills at a trickle while fast uploads wait, so while an upload
waits for its client holding a buffer, the lease is *idle*. When the first upload in line
needs budget that is not there, the pool makes room, oldest idle first, once a lease has
been idle ``patience_seconds`` (so a fast upload's momentary waits are never touched):

1. *spill*: an idle lease's partial chunk moves to a private copy of exactly its size,
   charged to the budget at that size, and the pooled buffer goes back (a buffer still
   empty simply goes back). The slow upload carries on; when its next bytes arrive it
   takes a pooled buffer again (charged only the difference) and copies its bytes back.
2. *evict*: if the budget is still short and spills hold more than half of it, spilled
   leases idle for ``evict_after_seconds`` are ended, slowest first (the chunk that
   began filling longest ago): the upload fails with ``SlowUpload`` (S3 answers 400
   RequestTimeout) and its bytes are dropped. So moving uploads always have at least
   half the budget. When spills hold all of the budget that is out (no pooled buffer will
   come back), any other spilled lease is evicted, slowest first, even one waiting for
   the pool, so that the pool never deadlocks.

Memory bound: pooled buffers and spilled chunks together never exceed
``capacity × chunk_size`` bytes (``engine.upload_memory_bytes``), whatever the number or
speed of the clients. Spilling never needs more budget than it frees, and an upload needs
at most one chunk of budget to make progress (a spilled one needs only the difference), so
uploads cannot deadlock on the pool.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import trio

# How long an upload must have waited on its client before its buffer is taken back
# (its partial chunk spilled). Far above the gaps of a fast upload (a loopback or LAN
# client refills the socket within milliseconds), far below what a waiter would notice.
DEFAULT_PATIENCE_SECONDS: Final = 0.05
# How long a spilled upload must have waited on its client before it may be evicted.
# Dropping an upload is final, so this is far above the delays a busy server adds to a
# fast client's reads, yet a client that pauses this long while others wait is not one
# the budget should be kept for.
DEFAULT_EVICT_AFTER_SECONDS: Final = 1.0
# Spills may keep at most this share of the budget before the longest-stalled ones are
# evicted, so uploads that are moving always have the rest: half of 12 buffers is about
# what one upload at full speed keeps busy.
_SPILL_SHARE: Final = 0.5


class SlowUpload(Exception):
    """The upload waited on its client, holding buffered bytes others needed; it is dropped."""


@dataclass(frozen=True, slots=True)
class ChunkBufferStatistics:
    capacity: int  # buffers the budget holds
    in_use: int  # pooled buffers out
    allocated: int  # pooled buffers ever allocated (reuse keeps this at most capacity)
    waiting: int  # uploads waiting for budget
    spilled_bytes: int  # budget held by spilled partial chunks
    spills: int
    evictions: int


class ChunkBuffers:
    def __init__(
        self,
        chunk_size: int,
        capacity: int,
        *,
        patience_seconds: float = DEFAULT_PATIENCE_SECONDS,
        evict_after_seconds: float = DEFAULT_EVICT_AFTER_SECONDS,
    ) -> None:
        if capacity < 1:
            raise ValueError("the pool needs at least one buffer")
        self.chunk_size = chunk_size
        self.capacity = capacity
        self.patience_seconds = patience_seconds
        self.evict_after_seconds = evict_after_seconds
        self._free_bytes = capacity * chunk_size
        self._spill_limit_bytes = capacity * chunk_size * _SPILL_SHARE
        self._spares: list[bytearray] = []
        self._room = trio.lowlevel.ParkingLot()  # where the first in line waits
        self._queue: deque[trio.Event] = deque()  # uploads waiting for budget, in order
        self._in_use = 0
        self._allocated = 0
        self._spilled_bytes = 0
        self._spills = 0
        self._evictions = 0
        # Leases waiting on their client with a pooled, partly filled chunk; and leases
        # holding a spilled chunk. Both oldest first (dicts keep insertion order).
        self._idle: dict[ChunkLease, None] = {}
        self._spilled: dict[ChunkLease, None] = {}

    def lease(self) -> ChunkLease:
        """A lease for one upload's chunk in the making."""
        return ChunkLease(self)

    async def acquire(self, lease: ChunkLease | None = None) -> bytearray:
        """A chunk-sized buffer (contents unspecified); waits while the budget is spent.

        For a `lease` holding a spilled chunk, the spill's charge moves to the buffer.
        """
        await trio.lowlevel.checkpoint()
        credit = lease._spill_charge if lease is not None else 0
        if self._queue or self._free_bytes + credit < self.chunk_size:
            await self._wait_turn(lease, credit)
        if lease is not None and credit:
            lease._drop_spill()  # its charge becomes part of the buffer's
        self._free_bytes -= self.chunk_size - credit
        self._in_use += 1
        if self._spares:
            return self._spares.pop()
        self._allocated += 1
        return bytearray(self.chunk_size)

    async def _wait_turn(self, lease: ChunkLease | None, credit: int) -> None:
        """Wait in line (first come, first served) until the budget has room for us.

        Only the first in line watches the budget: it makes room (see the module
        docstring) and re-checks whenever budget comes back, or every `patience_seconds`
        for leases that have since become idle long enough. The others sleep, so a long
        line costs nothing while it waits.
        """
        turn = trio.Event()
        self._queue.append(turn)
        try:
            if self._queue[0] is not turn:
                await turn.wait()
            while self._free_bytes + credit < self.chunk_size:
                self._make_room(lease)
                if self._free_bytes + credit >= self.chunk_size:
                    break
                with trio.move_on_after(self.patience_seconds):
                    await self._room.park()
        finally:
            self._queue.remove(turn)
            if self._queue:
                self._queue[0].set()

    def release(self, buffer: bytearray) -> None:
        self._spares.append(buffer)
        self._in_use -= 1
        self._give_back(self.chunk_size)

    def statistics(self) -> ChunkBufferStatistics:
        return ChunkBufferStatistics(
            capacity=self.capacity,
            in_use=self._in_use,
            allocated=self._allocated,
            waiting=len(self._queue),
            spilled_bytes=self._spilled_bytes,
            spills=self._spills,
            evictions=self._evictions,
        )

    def _give_back(self, size: int) -> None:
        self._free_bytes += size
        self._room.unpark_all()

    def _make_room(self, requester: ChunkLease | None) -> None:
        """Spill, then evict, idle leases until one chunk of budget is free (see above)."""
        now = trio.current_time()
        credit = requester._spill_charge if requester is not None else 0

        def short() -> bool:
            return self._free_bytes + credit < self.chunk_size

        for lease in list(self._idle):
            if not short():
                return
            if lease._idle_for(now) >= self.patience_seconds:
                lease._spill()
        nothing_returns = self._in_use == 0  # no pooled buffer out will come back
        # The slowest first: the chunk that began longest ago and is still not full.
        for lease in sorted(self._spilled, key=ChunkLease._chunk_began_at):
            if not short():
                return
            if lease is requester:
                continue
            over = self._spilled_bytes > self._spill_limit_bytes
            if (over and lease._idle_for(now) >= self.evict_after_seconds) or nothing_returns:
                lease._evict()


class ChunkLease:
    """One upload's chunk in the making: its buffer, how much is filled, whether pooled.

    The upload's reader fills ``buffer[:filled]``; between reads the pool may swap the
    buffer for a private copy (spill) or end the upload (evict), so the reader reads
    ``buffer`` and ``filled`` afresh after every wait. Without a pool (``pool`` None)
    every buffer is private and nothing is ever spilled.
    """

    __slots__ = (
        "_chunk_began",
        "_evicted",
        "_idle_since",
        "_pool",
        "_scope",
        "_spill_charge",
        "buffer",
        "filled",
        "pooled",
    )

    def __init__(self, pool: ChunkBuffers | None) -> None:
        self._pool = pool
        self.buffer: bytearray | None = None
        self.filled = 0
        self.pooled = False
        self._spill_charge = 0
        self._idle_since: float | None = None
        self._scope: trio.CancelScope | None = None
        self._evicted = False
        self._chunk_began = 0.0

    def _chunk_began_at(self) -> float:
        return self._chunk_began

    async def take(self, size: int) -> None:
        """Make `buffer` a fresh buffer of `size` (pooled if chunk-sized), keeping what
        is filled: the first buffer of a chunk, or a larger one when a short one is full."""
        pool = self._pool
        if pool is None or size < pool.chunk_size:
            fresh = bytearray(size)
            pooled = False
        else:
            with self._evictable():
                fresh = await pool.acquire(self)
            pooled = True
        if self.filled:
            assert self.buffer is not None
            fresh[: self.filled] = self.buffer
        else:
            self._chunk_began = trio.current_time()
        self._let_go()
        self.buffer, self.pooled = fresh, pooled

    def hand_off(self) -> tuple[bytearray, bool]:
        """The full chunk leaves the lease (to be hashed and stored): (buffer, pooled)."""
        assert self.buffer is not None
        if self._pool is not None:
            # A spilled last chunk keeps its charge until `close`, after its put, and is
            # no longer the pool's to evict.
            self._pool._spilled.pop(self, None)
        handed = (self.buffer, self.pooled)
        self.buffer, self.filled, self.pooled = None, 0, False
        return handed

    async def receive(self, pieces: AsyncIterator[bytes]) -> bytes | None:
        """The next piece from the client, None at the end. Meanwhile the lease is idle:
        the pool may spill its partial chunk, or evict it (then this raises SlowUpload)."""
        pool = self._pool
        if self._evicted:
            raise SlowUpload("the upload was dropped while it waited on its client")
        if pool is None or not (self.filled or self.pooled):  # nothing to lend or evict
            return await anext(pieces, None)
        self._idle_since = trio.current_time()
        if self.pooled:
            pool._idle[self] = None
        try:
            if not self.filled:  # an empty reserved buffer: lent back at no cost
                return await anext(pieces, None)
            with self._evictable():
                return await anext(pieces, None)
        finally:
            self._idle_done()

    def close(self) -> None:
        """Give back whatever the lease still holds (the upload ended, well or not)."""
        self._let_go()
        self.buffer, self.filled, self.pooled = None, 0, False
        self._idle_done()

    # the pool's side

    def _idle_for(self, now: float) -> float:
        return 0.0 if self._idle_since is None else now - self._idle_since

    def _idle_done(self) -> None:
        self._idle_since = None
        if self._pool is not None:
            self._pool._idle.pop(self, None)

    def _let_go(self) -> None:
        """Give the pooled buffer or the spill's charge back (the bytes are dealt with)."""
        pool = self._pool
        if pool is None:
            return
        if self.pooled and self.buffer is not None:
            pool.release(self.buffer)
            self.pooled = False
        if self._spill_charge:
            charge = self._spill_charge
            self._drop_spill()
            pool._give_back(charge)

    def _drop_spill(self) -> None:
        pool = self._pool
        assert pool is not None
        pool._spilled_bytes -= self._spill_charge
        pool._spilled.pop(self, None)
        self._spill_charge = 0

    def _spill(self) -> None:
        pool = self._pool
        assert pool is not None
        assert self.buffer is not None
        assert self.pooled
        if not self.filled:  # reserved and still empty: just give it back
            pool._idle.pop(self, None)
            pool.release(self.buffer)
            self.buffer, self.pooled = None, False
            return
        private = bytearray(self.buffer[: self.filled])
        pool._idle.pop(self, None)
        pool._free_bytes -= self.filled  # charged before the buffer's chunk comes back
        self._spill_charge = self.filled
        pool._spilled_bytes += self.filled
        pool._spilled[self] = None
        pool._spills += 1
        pool.release(self.buffer)
        self.buffer, self.pooled = private, False

    def _evict(self) -> None:
        pool = self._pool
        assert pool is not None
        pool._evictions += 1
        self._let_go()
        self.buffer, self.filled = None, 0
        self._evicted = True
        if self._scope is not None:
            self._scope.cancel()

    @contextmanager
    def _evictable(self) -> Iterator[None]:
        """A wait the pool may end by evicting the lease; then it raises SlowUpload."""
        if self._evicted:
            raise SlowUpload("the upload was dropped while it waited on its client")
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                yield
            finally:
                self._scope = None
        if self._evicted:
            raise SlowUpload("the upload was dropped while it waited on its client")
