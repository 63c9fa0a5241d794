"""The node cache: bounded by the memory its nodes hold, least recently used out first."""

from __future__ import annotations

import pytest
from footprint import decoded_footprint

from relay.ipld import multihash
from relay.ipld.cid import CID
from relay.mst import MissingBlock, Node, NodeCache, build, decode_node
from relay.mst.cache import node_memory

DAG_CBOR = 0x71


def tree_nodes(keys: list[bytes]) -> list[Node]:
    items = [(key, CID.v1(DAG_CBOR, multihash.sha2_256(key))) for key in sorted(keys)]
    return list(build(items).new_nodes.values())


@pytest.mark.parametrize("key_length", [16, 120, 1000])
def test_the_memory_estimate_tracks_what_decoded_nodes_hold(key_length: int) -> None:
    keys = [f"{n:08d}".encode().ljust(key_length, b"x") for n in range(4000)]
    encoded = [node.to_bytes() for node in tree_nodes(keys)]
    decoded, measured = decoded_footprint(decode_node, encoded)
    estimated = sum(map(node_memory, decoded))
    assert 0.75 < estimated / measured < 1.33, (estimated, measured)


def test_the_cache_evicts_least_recently_used_nodes_past_its_byte_budget() -> None:
    nodes = tree_nodes([f"key-{n:05d}".encode() for n in range(2000)])
    budget = sum(map(node_memory, nodes[:100]))
    cache = NodeCache(budget)
    for node in nodes[:100]:
        cache.put(node)
    assert len(cache) == 100
    assert cache.get(nodes[0].cid) is nodes[0]  # now the most recently used
    cache.put(nodes[100])
    assert nodes[0].cid in cache
    assert nodes[1].cid not in cache  # the least recently used made room
    with pytest.raises(MissingBlock):
        cache.load(nodes[1].cid)
    for node in nodes[100:]:
        cache.put(node)
    stats = cache.statistics()
    assert stats.memory_bytes <= budget
    assert stats.memory_bytes == sum(node_memory(node) for node in nodes if node.cid in cache)
    assert stats.evictions == len(nodes) - len(cache)


def test_a_node_larger_than_the_budget_is_still_kept_alone() -> None:
    (node, *_) = tree_nodes([b"only"])
    cache = NodeCache(1)
    cache.put(node)
    assert cache.load(node.cid) is node
    assert cache.statistics().size == 1
