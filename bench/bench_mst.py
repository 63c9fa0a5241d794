"""The MST at bucket scale: bulk build, batched inserts, lookups, ordered walks, codec.

Keys look like S3 photo paths (``photos/2024/<random>/IMG_<n>.jpg``), every value is one
fixed manifest CID, and every node lives in a dict (a warm cache: this measures the tree,
not the store).

Run: ``.venv/bin/python -m bench.bench_mst [--keys N]`` (default 1,000,000).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from typing import Any

from bench.common import peak_rss_mib, save, table
from relay.ipld.cid import CID
from relay.mst import Node, apply, build, decode_node, get, walk

VALUE = CID.decode("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")
BATCH_SIZE = 1_000
BATCHES = 20
GET_PROBES = 10_000
WALK_STARTS = 20
WALK_SPAN = 1_000


def photo_keys(count: int, rng: random.Random, first: int = 0) -> list[bytes]:
    return [
        b"photos/2024/%08x/IMG_%d.jpg" % (rng.getrandbits(32), number)
        for number in range(first, first + count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    count: int = args.keys
    rng = random.Random(2024)
    results: dict[str, Any] = {"keys": count, "batch_size": BATCH_SIZE}

    keys = sorted(photo_keys(count, rng))
    started = time.perf_counter()
    built = build((key, VALUE) for key in keys)
    build_seconds = time.perf_counter() - started
    nodes: dict[CID, Node] = dict(built.new_nodes)
    results["build_keys_per_second"] = count / build_seconds
    results["build_seconds"] = build_seconds
    results["tree_nodes"] = len(nodes)

    # batches of new random keys into the big tree
    root = built.root
    written = []
    started = time.perf_counter()
    for batch_number in range(BATCHES):
        batch = [
            (key, VALUE) for key in photo_keys(BATCH_SIZE, rng, count + batch_number * BATCH_SIZE)
        ]
        result = apply(root, batch, nodes.__getitem__)
        nodes.update(result.new_nodes)
        root = result.root
        written.append(len(result.new_nodes))
    apply_seconds = time.perf_counter() - started
    results["apply_keys_per_second"] = BATCHES * BATCH_SIZE / apply_seconds
    results["apply_batch_ms"] = apply_seconds / BATCHES * 1e3
    results["apply_nodes_written_per_batch"] = statistics.mean(written)

    # lookups of existing keys, one at a time
    load = nodes.__getitem__
    probes = rng.sample(keys, min(GET_PROBES, len(keys)))
    latencies = []
    clock = time.perf_counter_ns
    for key in probes:
        before = clock()
        found = get(root, key, load)
        latencies.append(clock() - before)
        assert found == VALUE
    latencies.sort()
    results["get_mean_us"] = statistics.mean(latencies) / 1e3
    results["get_p99_us"] = latencies[int(len(latencies) * 0.99)] / 1e3

    # ordered walks: everything, then 1,000 keys from random starts
    started = time.perf_counter()
    walked = sum(1 for _ in walk(root, load))
    walk_seconds = time.perf_counter() - started
    assert walked == count + BATCHES * BATCH_SIZE
    results["walk_all_keys_per_second"] = walked / walk_seconds
    started = time.perf_counter()
    for start in rng.sample(keys, min(WALK_STARTS, len(keys))):
        span = list(itertools.islice(walk(root, load, start), WALK_SPAN))
        assert span[0][0] == start
    results["walk_from_start_keys_per_second"] = (
        WALK_STARTS * WALK_SPAN / (time.perf_counter() - started)
    )

    # the codec on the tree's own nodes
    sample = rng.sample(list(nodes.values()), min(2_000, len(nodes)))
    started = time.perf_counter()
    for node in sample:
        Node(node.left, node.entries).to_bytes()
    results["node_encode_us"] = (time.perf_counter() - started) / len(sample) * 1e6
    encoded = [node.to_bytes() for node in sample]
    started = time.perf_counter()
    for data in encoded:
        decode_node(data)
    results["node_decode_us"] = (time.perf_counter() - started) / len(sample) * 1e6
    results["mean_entries_per_node"] = statistics.mean(len(node.entries) for node in sample)
    results["peak_rss_mib"] = peak_rss_mib()

    print(f"MST, {count:,} keys (photo paths), nodes in memory")
    print(
        table(
            [
                (
                    "bulk build",
                    f"{results['build_keys_per_second']:,.0f} keys/s "
                    f"({build_seconds:.1f} s, {len(built.new_nodes):,} nodes)",
                ),
                (
                    "batched insert",
                    f"{results['apply_keys_per_second']:,.0f} keys/s "
                    f"({results['apply_batch_ms']:.0f} ms and "
                    f"{results['apply_nodes_written_per_batch']:,.0f} nodes per "
                    f"{BATCH_SIZE:,}-key batch)",
                ),
                (
                    "get",
                    f"{results['get_mean_us']:.1f} µs mean, {results['get_p99_us']:.1f} µs p99",
                ),
                ("walk, whole tree", f"{results['walk_all_keys_per_second']:,.0f} keys/s"),
                (
                    "walk, random start",
                    f"{results['walk_from_start_keys_per_second']:,.0f} keys/s "
                    f"({WALK_SPAN:,} keys each)",
                ),
                (
                    "node encode / decode",
                    f"{results['node_encode_us']:.1f} / "
                    f"{results['node_decode_us']:.1f} µs "
                    f"({results['mean_entries_per_node']:.1f} entries)",
                ),
                ("peak RSS", f"{results['peak_rss_mib']:,.0f} MiB"),
            ]
        )
    )
    print(f"wrote {save('mst', results)}")


if __name__ == "__main__":
    main()
