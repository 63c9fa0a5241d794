"""The read path: manifest → byte range → raw leaves → verified chunks, streamed in order.

``serve_ranges`` fetches up to ``prefetch`` chunks ahead of the one being sent, each with
its own task, and hands them over in order through a channel of one slot; peak memory is
about ``chunk size × (prefetch + 2)`` whatever the object's size. Every chunk is verified
by the store against its sha2-256 multihash before a byte of it is sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final

import trio

from relay.errorgroups import single_error
from relay.store.base import BlobStore
from relay.unixfs import LeafSpan

# Four 1 MiB chunks ahead keep a local disk or a nearby upstream streaming at full speed.
DEFAULT_PREFETCH: Final = 4


class _Fetch:
    __slots__ = ("data", "done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.data = b""
        self.error: BaseException | None = None


async def _fetch_span(store: BlobStore, span: LeafSpan, slot: _Fetch) -> None:
    try:
        chunk = await store.get(span.cid.multihash)
        slot.data = chunk[span.skip : span.skip + span.take]
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
) -> None:
    """Send the bytes of ``spans`` in order; a failed or corrupt chunk raises."""
    with single_error():
        async with send, trio.open_nursery() as nursery:
            pending: deque[_Fetch] = deque()
            spans_left = iter(spans)

            def start_next() -> None:
                span = next(spans_left, None)
                if span is not None:
                    slot = _Fetch()
                    pending.append(slot)
                    nursery.start_soon(_fetch_span, store, span, slot)

            for _ in range(max(1, prefetch)):
                start_next()
            while pending:
                slot = pending.popleft()
                await slot.done.wait()
                if slot.error is not None:
                    raise slot.error
                start_next()
                await send.send(slot.data)
