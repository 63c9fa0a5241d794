"""The read path's batching: a cold listing fetches nodes and manifests in a few batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from bucket_helpers import body_of
from footprint import decoded_footprint

import relay.unixfs.node
from relay.bucket.blocks import (
    file_node_memory,
    manifest_memory,
    subtrees_reaching,
    summary_memory,
)
from relay.bucket.engine import Engine, EngineConfig, open_engine
from relay.bucket.listing import ListingStatistics
from relay.bucket.manifest import Manifest, ObjectSummary, decode_manifest
from relay.chunker import ChunkerConfig
from relay.ipld.block import raw_block
from relay.ipld.cid import CID
from relay.lru import LruCache
from relay.mst import Entry, Node
from relay.registry import open_sqlite_registry
from relay.store.disk import open_disk_store
from relay.unixfs import Link, decode_file_node, encode_file_node


@asynccontextmanager
async def disk_engine(directory: Path) -> AsyncIterator[Engine]:
    """An engine over a disk store in ``directory``: reopened, its caches start empty."""
    async with (
        open_disk_store(directory / "blobs") as store,
        open_sqlite_registry(directory / "r.sqlite") as registry,
        open_engine(store, registry) as engine,
    ):
        yield engine


async def fill(directory: Path, keys: list[str]) -> None:
    async with disk_engine(directory) as engine:
        await engine.create_bucket("b")
        limiter = trio.CapacityLimiter(500)

        async def put(key: str) -> None:
            async with limiter:
                await engine.put_object("b", key, body_of(key.encode()))

        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(put, key)


def link(n: int) -> CID:
    return Node(None, (Entry(b"k%d" % n, Node(None, ()).cid, None),)).cid


def test_subtrees_reaching_keeps_those_that_can_hold_keys_at_or_after_the_cursor() -> None:
    value = link(0)
    node = Node(
        link(1),
        (Entry(b"c", value, link(2)), Entry(b"f", value, None), Entry(b"m", value, link(3))),
    )
    assert subtrees_reaching(node, b"a") == [link(1), link(2), link(3)]
    assert subtrees_reaching(node, b"c") == [link(2), link(3)]  # the left holds keys < c
    assert subtrees_reaching(node, b"d") == [link(2), link(3)]
    assert subtrees_reaching(node, b"f") == [link(3)]  # c's right subtree ends before f
    assert subtrees_reaching(node, b"z") == [link(3)]
    assert subtrees_reaching(Node(link(1), ()), b"z") == [link(1)]


async def test_a_cold_listing_fetches_in_batches_and_lists_every_key(tmp_path: Path) -> None:
    keys = [f"dir/{n:05d}" for n in range(3000)]
    await fill(tmp_path, keys)
    # A fresh engine: nothing cached. Count the registry's lookups.
    async with disk_engine(tmp_path) as engine:
        registry = engine.registry
        lookups = 0
        find_blocks = registry.find_blocks

        async def counting_find_blocks(blocks: list[bytes]) -> object:
            nonlocal lookups
            lookups += 1
            return await find_blocks(blocks)

        registry.find_blocks = counting_find_blocks  # type: ignore[method-assign,assignment]
        listed: list[str] = []
        after = ""
        while True:
            page = await engine.list_objects("b", start_after=after, limit=1000)
            listed += [entry.key for entry in page.entries]
            assert all(entry.manifest.size == len(entry.key) for entry in page.entries)
            if not page.is_truncated:
                break
            after = listed[-1]
        fetched = engine.blocks.statistics().block_fetches
    assert listed == keys
    # One node or manifest at a time would be thousands of lookups (~1,500 nodes and
    # 3,000 manifests); batched, each page costs a few waves of nodes and one of manifests.
    assert fetched > 3000
    assert lookups < 60, lookups


async def page_keys(engine: Engine, cursor: bytes, limit: int) -> tuple[list[str], bytes]:
    """A listing page as the S3 layer asks for it: keys with their summaries."""
    page = await engine.list_page("b", cursor=cursor, max_keys=limit)
    assert [summary.size for _, summary in page.keys] == [len(key) for key, _ in page.keys]
    return [key for key, _ in page.keys], page.cursor


async def test_a_truncated_page_reads_the_next_page_ahead(tmp_path: Path) -> None:
    keys = [f"k{n:04d}" for n in range(300)]
    await fill(tmp_path, keys)
    async with disk_engine(tmp_path) as engine:
        first, cursor = await page_keys(engine, b"", 100)
        assert first == keys[:100]
        assert engine.listing_statistics().read_aheads == 1
        second, cursor = await page_keys(engine, cursor, 100)
        assert second == keys[100:200]
        assert engine.listing_statistics().pages_read_ahead == 1  # page 2 was warmed
        # A delimiter listing is never read ahead, and a page nobody read ahead is no hit:
        # the counts can fail.
        page = await engine.list_page("b", delimiter="/", cursor=keys[249].encode(), max_keys=10)
        assert [key for key, _ in page.keys] == keys[250:260]
        assert engine.listing_statistics() == ListingStatistics(2, 1)
        third, _ = await page_keys(engine, cursor, 100)
        assert third == keys[200:]
        assert engine.listing_statistics() == ListingStatistics(2, 2)


@pytest.mark.parametrize("metadata_values", [0, 8])
def test_the_manifest_memory_estimate_tracks_decoded_manifests(metadata_values: int) -> None:
    encoded = [
        Manifest(
            key=f"photos/2026/{n:06d}.jpg",
            size=4096,
            body=raw_block(n.to_bytes(4, "big")).cid,
            chunk_size=1 << 20,
            etag=f'"{n:032x}"',
            last_modified_ms=1_700_000_000_000 + n,
            content_type="image/jpeg",
            metadata={f"field-{m}": "v" * 40 for m in range(metadata_values)},
        )
        .to_block()
        .data
        for n in range(2000)
    ]
    decoded, measured = decoded_footprint(decode_manifest, encoded)
    estimated = sum(map(manifest_memory, decoded))
    assert 0.75 < estimated / measured < 1.33, (estimated, measured)


async def test_listing_summaries_are_cached_apart_from_manifests(tmp_path: Path) -> None:
    keys = [f"k{n:04d}" for n in range(300)]
    await fill(tmp_path, keys)
    async with disk_engine(tmp_path) as engine:
        found, _ = await engine.list_keys("b", limit=1000)
        cids = [cid for _, cid in found]
        summaries = await engine.blocks.summaries(cids)
        # A listing leaves the manifest cache to HEAD and GET.
        assert engine.blocks.statistics().manifest_cache_size == 0
        assert engine.blocks.statistics().summary_cache_size == len(keys)
        fetched = engine.blocks.statistics().block_fetches
        assert await engine.blocks.summaries(cids) == summaries
        assert engine.blocks.statistics().block_fetches == fetched  # all from the cache
        manifests = await engine.manifests(cids)
        assert summaries == [manifest.summary() for manifest in manifests]
        assert [s.size for s in summaries] == [len(key) for key in keys]


def test_the_summary_memory_estimate_counts_its_cache_entry() -> None:
    cids = [raw_block(b"%d" % n).cid for n in range(5000)]
    etags = [f"{n:032x}" if n % 3 else f"{n:032x}-12" for n in range(5000)]
    cache: LruCache[CID, ObjectSummary] = LruCache(1 << 40, summary_memory)

    def fill(_: bytes) -> None:
        for n, cid in enumerate(cids):
            cache.put(cid, ObjectSummary(4096 + n, etags[n], 1_700_000_000_000 + n))

    _, measured = decoded_footprint(fill, [b""])
    assert 0.75 < cache.memory_bytes / measured < 1.33, (cache.memory_bytes, measured)


@pytest.mark.parametrize("width", [2, 174])
def test_the_file_node_memory_estimate_tracks_decoded_nodes(width: int) -> None:
    encoded = [
        encode_file_node(
            [Link(raw_block(b"%d-%d" % (n, m)).cid, 1 << 20, 1 << 20) for m in range(width)],
            width << 20,
        ).data
        for n in range(200)
    ]
    decoded, measured = decoded_footprint(decode_file_node, encoded)
    estimated = sum(map(file_node_memory, decoded))
    assert 0.75 < estimated / measured < 1.33, (estimated, measured)


async def test_ranged_reads_decode_each_file_node_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EngineConfig(chunker=ChunkerConfig(chunk_size_bytes=16 << 10), unixfs_width=4)
    data = bytes(range(256)) * (64 * 20)  # 20 chunks of 16 KiB: three levels at width 4
    async with (
        open_disk_store(tmp_path / "blobs") as store,
        open_sqlite_registry(tmp_path / "r.sqlite") as registry,
        open_engine(store, registry, config) as engine,
    ):
        await engine.create_bucket("b")
        await engine.put_object("b", "k", body_of(data))
        decodes = 0
        decode = relay.unixfs.node._decode

        def counting(encoded: bytes) -> relay.unixfs.node.FileNode:
            nonlocal decodes
            decodes += 1
            return decode(encoded)

        monkeypatch.setattr(relay.unixfs.node, "_decode", counting)
        for first in (0, 100_000, 200_000):
            plan = await engine.plan_read("b", "k", first=first, last=first + 50_000)
            assert sum(span.take for span in plan.spans) == 50_001
        first_pass = decodes
        assert first_pass > 0  # (the count can fail: the file has interior nodes)
        assert engine.blocks.statistics().file_node_cache_size == first_pass
        for first in (0, 100_000, 200_000):
            await engine.plan_read("b", "k", first=first, last=first + 50_000)
        assert decodes == first_pass  # every node came from the cache, decoded


def test_the_lru_cache_is_bounded_by_the_weight_of_its_values() -> None:
    cache: LruCache[int, bytes] = LruCache(1000, len)
    for n in range(20):
        cache.put(n, bytes(100))
    assert len(cache) == 10
    assert cache.memory_bytes == 1000
    assert cache.get(19) is not None
    assert cache.get(9) is None  # the ten oldest made room
    cache.put(19, bytes(600))  # replacing a value re-weighs it
    assert cache.memory_bytes <= 1000
    assert cache.get(19) == bytes(600)
    cache.put(99, bytes(5000))  # larger than the budget: kept alone
    assert len(cache) == 1
    assert cache.get(99) == bytes(5000)
