"""The read path: manifest → byte range → raw leaves → verified chunks, streamed in order.

``serve_spans`` fetches up to ``prefetch`` chunks ahead of the one being sent, each with
its own task, and hands them over in order through a channel of one slot. Every chunk is
verified by the store against its sha2-256 multihash before a byte of it is sent.

Memory. Each stream always has its next chunk in flight (so every stream makes progress);
chunks fetched *beyond* that each take a token from a ``ReadAheadBudget`` the whole engine
shares, and give it back when handed over. A stream that finds no token free reads one
chunk at a time until one is. So a lone download reads ``prefetch`` chunks ahead, and a
hundred concurrent ones hold a hundred chunks plus the budget, not ``100 × prefetch``.

The first chunk. A GET must not answer ``200`` and then fail on its first byte: the
caller fetches the first span's chunk (``fetch_span``) before it commits to a status line,
and hands it over as ``first``, so it is not fetched twice. It is that stream's one
chunk in flight (no budget token) while the response head goes out, and goes into the
channel before any other fetch starts, so the memory above holds. Past it, a chunk that
fails can only abort the body: the status line has been sent.

``ObjectReads`` is the engine's read service over these: a manifest and a byte range
become a ``ReadPlan`` (the leaves that cover the range), then verified chunks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Final

import trio

from relay.bucket.blocks import BlockReader
from relay.bucket.errors import InvalidRange
from relay.bucket.manifest import Manifest
from relay.errorgroups import single_error
from relay.store.base import BlobStore
from relay.unixfs import LeafSpan, leaves_for_range

# Four 1 MiB chunks ahead keep a local disk or a nearby upstream streaming at full speed.
DEFAULT_PREFETCH: Final = 4


class ReadAheadBudget:
    """Chunks that all streams together may hold beyond the one each is waiting for."""

    def __init__(self, chunks: int) -> None:
        self._free = chunks
        self.capacity = chunks

    def take_nowait(self) -> bool:
        if self._free == 0:
            return False
        self._free -= 1
        return True

    def give_back(self) -> None:
        self._free += 1

    @property
    def free(self) -> int:
        return self._free


class _Fetch:
    __slots__ = ("data", "done", "error", "token")

    def __init__(self, token: ReadAheadBudget | None) -> None:
        self.done = trio.Event()
        self.data = b""
        self.error: BaseException | None = None
        self.token = token  # the budget this fetch took a token from, if any

    def give_back_token(self) -> None:
        if self.token is not None:
            self.token.give_back()
            self.token = None


async def fetch_span(store: BlobStore, span: LeafSpan) -> bytes:
    """The bytes of one span, from its chunk verified whole by the store."""
    chunk = await store.get(span.cid.multihash)
    return chunk[span.skip : span.skip + span.take]


async def _fetch_span(store: BlobStore, span: LeafSpan, slot: _Fetch) -> None:
    try:
        slot.data = await fetch_span(store, span)
    except Exception as exc:
        slot.error = exc
    finally:
        slot.done.set()


async def serve_spans(
    store: BlobStore,
    spans: Sequence[LeafSpan],
    send: trio.MemorySendChannel[bytes],
    *,
    prefetch: int = DEFAULT_PREFETCH,
    budget: ReadAheadBudget | None = None,
    first: bytes | None = None,
) -> None:
    """Send the bytes of ``spans`` in order; a failed or corrupt chunk raises.

    ``first``: the bytes of ``spans[0]``, already fetched (see "The first chunk")."""
    pending: deque[_Fetch] = deque()
    try:
        with single_error():
            async with send, trio.open_nursery() as nursery:
                spans_left = deque(spans if first is None else spans[1:])

                def fill() -> None:
                    while spans_left and len(pending) < max(1, prefetch):
                        token = budget if pending else None  # the next one needed is free
                        if token is not None and not token.take_nowait():
                            return
                        slot = _Fetch(token)
                        pending.append(slot)
                        nursery.start_soon(_fetch_span, store, spans_left.popleft(), slot)

                if first is not None:
                    # Into the channel's empty slot first: then the next fetch is this
                    # stream's one chunk in flight, as for any other chunk.
                    await send.send(first)
                fill()
                while pending:
                    slot = pending[0]
                    await slot.done.wait()
                    pending.popleft()
                    slot.give_back_token()
                    if slot.error is not None:
                        raise slot.error
                    fill()
                    await send.send(slot.data)
    finally:
        for slot in pending:  # fetched or abandoned, they hold no chunk any more
            slot.give_back_token()


@dataclass(frozen=True, slots=True)
class ReadPlan:
    manifest: Manifest
    start: int
    end: int  # exclusive
    spans: list[LeafSpan]
    # The bytes of spans[0], fetched and verified ahead (``fetch_first_chunk``).
    first_chunk: bytes | None = None

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ObjectStream:
    manifest: Manifest
    start: int
    end: int  # exclusive
    chunks: trio.MemoryReceiveChannel[bytes]


def resolve_range(
    size: int, first: int | None, last: int | None, suffix: int | None
) -> tuple[int, int]:
    """An HTTP byte range against ``size``: ``(start, end)`` with end exclusive."""
    if suffix is not None:
        if suffix <= 0:
            raise InvalidRange(size)
        return max(0, size - suffix), size
    if first is None:
        return 0, size
    if first >= size or (last is not None and last < first):
        raise InvalidRange(size)
    end = size if last is None else min(last + 1, size)
    return first, end


class ObjectReads:
    """Plans and streams object reads: the engine's read path below key lookup."""

    def __init__(
        self, store: BlobStore, blocks: BlockReader, budget: ReadAheadBudget, *, prefetch: int
    ) -> None:
        self._store = store
        self._blocks = blocks
        self._budget = budget
        self._prefetch = prefetch

    async def plan(
        self,
        manifest: Manifest,
        *,
        first: int | None = None,
        last: int | None = None,
        suffix: int | None = None,
    ) -> ReadPlan:
        start, end = resolve_range(manifest.size, first, last, suffix)
        spans = await self._blocks.run_with_file_nodes(
            lambda load: list(
                leaves_for_range(manifest.body, start, end - start, load, file_size=manifest.size)
            )
        )
        return ReadPlan(manifest, start, end, spans)

    async def fetch_first_chunk(self, plan: ReadPlan) -> ReadPlan:
        """``plan`` with its first chunk fetched and verified, so that a missing or corrupt
        first block (or an unreachable store) raises here, before a status line is sent.
        ``write`` then sends these bytes rather than fetching them again."""
        if not plan.spans or plan.first_chunk is not None:
            await trio.lowlevel.checkpoint()
            return plan
        return replace(plan, first_chunk=await fetch_span(self._store, plan.spans[0]))

    async def write(self, plan: ReadPlan, write: Callable[[bytes], Awaitable[object]]) -> None:
        """Send the planned bytes to ``write`` in order, each chunk verified first.

        The prefetching tasks live inside this call, so the caller's task tree stays
        properly nested however it streams (an HTTP response body calls this)."""
        async with self.stream(plan.spans, plan.first_chunk) as chunks:
            async for chunk in chunks:
                await write(chunk)

    @asynccontextmanager
    async def stream(
        self, spans: Sequence[LeafSpan], first: bytes | None = None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        """The chunks of ``spans`` through a one-slot channel, fetched ahead by a nursery
        that lives exactly as long as this context."""
        send, receive = trio.open_memory_channel[bytes](1)
        with single_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        serve_spans, self._store, spans, send,
                        prefetch=self._prefetch, budget=self._budget, first=first,
                    )
                )  # fmt: skip
                async with receive:
                    yield receive
                nursery.cancel_scope.cancel()
