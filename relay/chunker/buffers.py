"""The memory budget for bodies in flight: one pool of chunk buffers for the whole server.

Theory of operation. An upload fills a chunk-sized buffer; a full one is hashed and put
while the upload fills the next. Each upload alone is bounded (a few chunks), but without
a shared bound memory grows with the number of concurrent uploads: fifty parts in flight
held some 400 MiB. The pool holds at most ``capacity`` buffers. An upload takes one when
its next chunk starts arriving and gives it back when that chunk's put has finished;
while none is free it stops reading its body, so the wait reaches the client as TCP
backpressure, never as memory. An upload needs only one buffer at a time to make
progress (it hands a full buffer on before taking the next), so uploads cannot deadlock
on the pool. Buffers are reused: a steady upload allocates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio


@dataclass(frozen=True, slots=True)
class ChunkBufferStatistics:
    capacity: int
    in_use: int
    allocated: int
    waiting: int


class ChunkBuffers:
    def __init__(self, chunk_size: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the pool needs at least one buffer")
        self.chunk_size = chunk_size
        self.capacity = capacity
        self._free: list[bytearray] = []
        self._slots = trio.Semaphore(capacity)
        self._allocated = 0

    async def acquire(self) -> bytearray:
        """A chunk-sized buffer (contents unspecified); waits while all are in use."""
        await self._slots.acquire()
        if self._free:
            return self._free.pop()
        self._allocated += 1
        return bytearray(self.chunk_size)

    def release(self, buffer: bytearray) -> None:
        self._free.append(buffer)
        self._slots.release()

    def statistics(self) -> ChunkBufferStatistics:
        return ChunkBufferStatistics(
            capacity=self.capacity,
            in_use=self.capacity - self._slots.value,
            allocated=self._allocated,
            waiting=self._slots.statistics().tasks_waiting,
        )
