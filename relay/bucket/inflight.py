"""Writes in flight: the blobs garbage collection must not sweep though no root names them.

A write puts its blobs (chunks, an index CAR) first and commits the root or part row that
names them last, so between the two its blobs are reachable from nothing. New bytes are
safe by their age (``gc.grace_seconds``), but a put that *deduplicates* against an old,
unreachable blob leaves it as old as it was: without more, a collection that marked
before the commit and sweeps after the put would delete a blob the commit then names.

Two records close that gap within this process (another process's writes are protected
by the grace alone; see the README):

- Each write runs inside ``InFlightWrites.write()`` (put, multipart part, Complete, and
  the bucket writer's commit of each batch, whose commit CAR is put before the registry
  names it): the blobs its task (and the tasks it starts, which inherit the context)
  puts are collected while it runs.
- A collection opens a ``fence()`` before it reads its roots. Until the fence closes it
  collects every blob put by anyone, and every blob of each write that finishes meanwhile.

A blob is *protected* while a write still running put it, or it was put or finished with
after the fence opened. Any write is then covered: one that committed before the fence
opened is in the roots the collection reads after; one that had not is either still
running or finished inside the fence. ``GuardedStore`` does the recording at the start
of each put, before the store checks whether it holds the blob, so a put that began
before the collection decided to delete a blob is seen by that decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from functools import wraps
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from relay.store.base import BlobRead, BlobStore, ReclaimReport, StoredBlob, StoreStatistics

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="WritesInFlight")


class _Write:
    """The blobs one write has put so far."""

    __slots__ = ("blobs", "running")

    def __init__(self) -> None:
        self.blobs: set[bytes] = set()
        self.running = True


_current_write: ContextVar[_Write | None] = ContextVar("relay_current_write", default=None)


class Fence:
    """What a collection must not sweep beyond its roots (see the module docstring)."""

    def __init__(self, writes: InFlightWrites) -> None:
        self._writes = writes
        self.blobs: set[bytes] = set()

    def protects(self, mh: bytes) -> bool:
        return mh in self.blobs or any(mh in write.blobs for write in self._writes.running)


class InFlightWrites:
    def __init__(self) -> None:
        self.running: set[_Write] = set()
        self._fences: set[Fence] = set()

    @contextmanager
    def write(self, *, separate: bool = False) -> Iterator[None]:
        """Record the blobs this task (and its children) put until the block ends. Inside
        a write still running, the block is part of it (a Complete calls put paths),
        unless ``separate``: a long-lived task (the bucket writer) inherits the context of
        the request that started it, and its commits must not end with that request."""
        current = _current_write.get()
        if not separate and current is not None and current in self.running:
            yield  # one record
            return
        write = _Write()
        token = _current_write.set(write)
        self.running.add(write)
        try:
            yield
        finally:
            _current_write.reset(token)
            write.running = False
            self.running.discard(write)
            for fence in self._fences:
                fence.blobs |= write.blobs

    @contextmanager
    def fence(self) -> Iterator[Fence]:
        fence = Fence(self)
        self._fences.add(fence)
        try:
            yield fence
        finally:
            self._fences.discard(fence)

    def saw_put(self, mh: bytes) -> None:
        write = _current_write.get()
        if write is not None and write.running:
            write.blobs.add(mh)
        for fence in self._fences:
            fence.blobs.add(mh)

    def guard(self, store: BlobStore) -> BlobStore:
        return GuardedStore(store, self)


class WritesInFlight(Protocol):
    @property
    def in_flight(self) -> InFlightWrites: ...


def in_flight_write(
    method: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """Decorate a write method of an object with ``in_flight``: it runs inside
    ``self.in_flight.write()``."""

    @wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.in_flight.write():
            return await method(self, *args, **kwargs)

    return run


def writing(store: BlobStore) -> AbstractContextManager[None]:
    """A write's context for a task that only has the store (the bucket writer, whose
    commit CAR is put before the commit names it): a separate write of the guard's, or
    nothing."""
    if isinstance(store, GuardedStore):
        return store.writes.write(separate=True)
    return nullcontext()


class GuardedStore:
    """A ``BlobStore`` that tells ``InFlightWrites`` of each put as it begins."""

    def __init__(self, store: BlobStore, writes: InFlightWrites) -> None:
        self.wrapped = store
        self.writes = writes

    async def put(self, mh: bytes, data: bytes) -> None:
        self.writes.saw_put(mh)
        await self.wrapped.put(mh, data)

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        return await self.wrapped.get(mh, offset, length, expect=expect)

    async def get_many(self, reads: Sequence[BlobRead]) -> list[bytes]:
        return await self.wrapped.get_many(reads)

    async def has(self, mh: bytes) -> bool:
        return await self.wrapped.has(mh)

    async def delete(self, mh: bytes, *, stored_before_ms: int | None = None) -> bool:
        return await self.wrapped.delete(mh, stored_before_ms=stored_before_ms)

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        return self.wrapped.list_blobs()

    async def reclaim_space(self) -> ReclaimReport:
        return await self.wrapped.reclaim_space()

    async def sync(self) -> None:
        await self.wrapped.sync()

    def statistics(self) -> StoreStatistics:
        return self.wrapped.statistics()

    async def aclose(self) -> None:
        await self.wrapped.aclose()

    def __getattr__(self, name: str) -> Any:
        # What the contract does not name (a backend's own statistics) is the wrapped
        # store's.
        return getattr(self.wrapped, name)
