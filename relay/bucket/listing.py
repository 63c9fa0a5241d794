"""Listing a bucket: pages of keys and common prefixes, read ahead for the next page.

Theory of operation. The bucket's MST yields keys in bytewise order from any start. A page
walks it from the cursor, rolling keys that contain the delimiter after the prefix into
common prefixes. Once a common prefix is emitted, the walk jumps past every key under it
by restarting just after ``prefix + b"\\xff"`` (0xff never occurs in UTF-8), so a prefix
holding a million keys costs one seek, not a million steps. A page holds at most
``max_keys`` entries (keys and common prefixes together); it is truncated exactly when one
more entry exists after its cursor, which the walk checks by looking one step ahead. The
page's ``cursor`` is where the next page starts, so a common prefix is never listed twice
and a key is never skipped, wherever a page boundary falls. The cursor is opaque to
callers (the S3 layer wraps it in a continuation token; a v1 marker becomes a cursor
through ``resume_after``).

Read-ahead. A client paging through a bucket without a delimiter (``aws s3 sync``,
``ls --recursive``) asks for the next page as soon as it has parsed this one, so after a
truncated page ``Listing`` warms the caches for the next one in the background (one
read-ahead per bucket at a time), and a request for exactly that page waits for it rather
than fetching the same blocks twice. A failed read-ahead is left for the real request.

``list_page`` is the pure paging algorithm over an injected key source, tested against a
slow reference; ``Listing`` is the engine's service that feeds it from the MST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio

from relay.bucket.blocks import BlockReader
from relay.bucket.manifest import ObjectSummary
from relay.ipld.cid import CID
from relay.mst import walk as mst_walk

# (prefix, after, limit) -> ([(key, manifest cid)], more)
KeySource = Callable[[str, bytes, int], Awaitable[tuple[list[tuple[str, CID]], bool]]]
SummaryLoader = Callable[[list[CID]], Awaitable[list[ObjectSummary]]]

# A listing request waits at most this long for the read-ahead of its own page.
READ_AHEAD_WAIT_SECONDS: Final = 5.0

PAST_EVERY_UTF8_SUFFIX = b"\xff"
# Keys fetched from the tree per step: enough for a page of plain keys in one step.
_STEP = 1001


@dataclass(frozen=True, slots=True)
class Page:
    keys: list[tuple[str, ObjectSummary]]
    common_prefixes: list[str]
    is_truncated: bool
    cursor: bytes  # where the next page starts (exclusive)
    last_entry: str | None  # the last key or common prefix returned (v1 NextMarker)


def common_prefix_of(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    index = key.find(delimiter, len(prefix))
    return None if index < 0 else key[: index + len(delimiter)]


def resume_after(marker: str, prefix: str, delimiter: str) -> bytes:
    """The cursor for a marker: past its whole common prefix if it rolls up into one
    (that prefix was listed already), else just past the marker itself."""
    if marker.startswith(prefix):
        rolled = common_prefix_of(marker, prefix, delimiter)
        if rolled is not None:
            return rolled.encode() + PAST_EVERY_UTF8_SUFFIX
    return marker.encode()


async def list_page(
    keys: KeySource,
    summaries: SummaryLoader,
    *,
    prefix: str,
    delimiter: str,
    cursor: bytes,
    max_keys: int,
) -> Page:
    if max_keys == 0:
        return Page([], [], False, cursor, None)  # as S3: an empty page, never truncated
    found: list[tuple[str, CID]] = []
    prefixes: list[str] = []
    last_entry: str | None = None
    while len(found) + len(prefixes) < max_keys:
        batch, more = await keys(prefix, cursor, _STEP)
        stopped_early = False  # the page filled up, or a prefix needs a seek
        for key, value in batch:
            rolled = common_prefix_of(key, prefix, delimiter)
            if rolled is None:
                found.append((key, value))
                cursor, last_entry = key.encode(), key
            else:
                prefixes.append(rolled)
                cursor, last_entry = rolled.encode() + PAST_EVERY_UTF8_SUFFIX, rolled
                stopped_early = True  # seek past everything under the prefix
            if len(found) + len(prefixes) == max_keys:
                stopped_early = True
            if stopped_early:
                break
        if not stopped_early and not more:
            # The whole rest of the listing was in this batch: nothing follows the page.
            return Page(
                await _with_summaries(found, summaries), prefixes, False, cursor, last_entry
            )
    following, _ = await keys(prefix, cursor, 1)
    page_keys = await _with_summaries(found, summaries)
    return Page(page_keys, prefixes, bool(following), cursor, last_entry)


async def _with_summaries(
    found: list[tuple[str, CID]], summaries: SummaryLoader
) -> list[tuple[str, ObjectSummary]]:
    loaded = await summaries([cid for _, cid in found])
    return [(key, summary) for (key, _), summary in zip(found, loaded, strict=True)]


@dataclass(frozen=True, slots=True)
class ListingStatistics:
    read_aheads: int  # next pages warmed in the background
    pages_read_ahead: int  # requests that found their page warming or warm


class Listing:
    """The engine's listing service: pages from a bucket's committed root."""

    def __init__(self, blocks: BlockReader, nursery: trio.Nursery) -> None:
        self._blocks = blocks
        self._nursery = nursery
        # bucket -> (the cursor of the page being read ahead, set when it is warm)
        self._read_aheads: dict[str, tuple[bytes, trio.Event]] = {}
        # bucket -> the cursor of the page read ahead last (until it is asked for)
        self._warm: dict[str, bytes] = {}
        self._started = 0
        self._hits = 0

    def statistics(self) -> ListingStatistics:
        return ListingStatistics(self._started, self._hits)

    async def keys(
        self, root: CID, *, prefix: str, after: bytes, limit: int
    ) -> tuple[list[tuple[str, CID]], bool]:
        """Keys (with their manifest CIDs) under ``root`` in order: those starting with
        ``prefix`` and greater than ``after``; at most ``limit``, and whether more follow.
        ``after`` is raw bytes: ``b"dir/\\xff"`` is past every UTF-8 key under ``dir/``."""
        raw_prefix = prefix.encode("utf-8")
        cursor, exclusive = (after, True) if after >= raw_prefix else (raw_prefix, False)
        found: list[tuple[bytes, CID]] = []
        more = False

        def collect(load: Callable[[CID], object]) -> None:
            nonlocal cursor, exclusive, more
            for raw_key, value in mst_walk(root, load, cursor, after=exclusive):  # type: ignore[arg-type]
                if not raw_key.startswith(raw_prefix):
                    return
                if len(found) == limit:
                    more = True
                    return
                found.append((raw_key, value))
                cursor, exclusive = raw_key, True

        await self._blocks.run_with_nodes(collect, walk=(root, lambda: cursor))
        return [(k.decode("utf-8"), v) for k, v in found], more

    async def page(
        self,
        bucket: str,
        root: CID,
        *,
        prefix: str,
        delimiter: str,
        cursor: bytes,
        max_keys: int,
    ) -> Page:
        async def keys(prefix: str, after: bytes, limit: int) -> tuple[list[tuple[str, CID]], bool]:
            return await self.keys(root, prefix=prefix, after=after, limit=limit)

        if not delimiter:
            await self._wait_for_read_ahead(bucket, cursor)
        page = await list_page(
            keys,
            self._blocks.summaries,
            prefix=prefix,
            delimiter=delimiter,
            cursor=cursor,
            max_keys=max_keys,
        )
        if page.is_truncated and not delimiter:
            self._read_ahead(bucket, root, prefix, page.cursor, max_keys)
        return page

    def _read_ahead(self, bucket: str, root: CID, prefix: str, after: bytes, limit: int) -> None:
        if bucket in self._read_aheads:
            return
        done = trio.Event()
        self._read_aheads[bucket] = (after, done)
        self._started += 1

        async def warm() -> None:
            try:
                keys, _ = await self.keys(root, prefix=prefix, after=after, limit=limit)
                await self._blocks.summaries([cid for _, cid in keys])
            except Exception:
                pass
            finally:
                del self._read_aheads[bucket]
                self._warm[bucket] = after
                done.set()

        self._nursery.start_soon(warm)

    async def _wait_for_read_ahead(self, bucket: str, after: bytes) -> None:
        reading = self._read_aheads.get(bucket)
        if reading is not None and reading[0] == after:
            self._hits += 1
            with trio.move_on_after(READ_AHEAD_WAIT_SECONDS):
                await reading[1].wait()
        elif self._warm.get(bucket) == after:
            self._hits += 1
        self._warm.pop(bucket, None)
