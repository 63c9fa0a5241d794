"""apply / get / walk / diff / build against dict references, and the MissingBlock protocol."""

from __future__ import annotations

import ast
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mst_reference import (
    KEY_POOL,
    VALUES,
    apply_reference,
    keys,
    mutations,
    reference_diff,
    reference_root,
    trees,
    value_cid,
)

import relay.mst
from relay.ipld.cid import CID
from relay.mst import (
    EMPTY_NODE,
    Change,
    MalformedNode,
    MissingBlock,
    Node,
    apply,
    build,
    decode_node,
    diff,
    get,
    walk,
)


class Store:
    """Every node ever created, with a count of loads."""

    def __init__(self) -> None:
        self.nodes: dict[CID, Node] = {}
        self.loads = 0

    def load(self, cid: CID) -> Node:
        self.loads += 1
        try:
            return self.nodes[cid]
        except KeyError:
            raise MissingBlock(cid) from None


def reachable(root: CID, store: Store) -> set[CID]:
    found = {root}
    pending = [root]
    while pending:
        cid = pending.pop()
        node = EMPTY_NODE if cid == EMPTY_NODE.cid else store.nodes[cid]
        for child in [node.left, *(entry.right for entry in node.entries)]:
            if child is not None and child not in found:
                found.add(child)
                pending.append(child)
    return found


def tree_of(items: dict[bytes, CID], store: Store) -> CID:
    result = build(sorted(items.items()))
    store.nodes.update(result.new_nodes)
    return result.root


batches = st.lists(mutations, min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(batches)
def test_batches_of_puts_and_deletes_match_a_dict(
    batch_list: list[list[tuple[bytes, CID | None]]],
) -> None:
    store = Store()
    reference: dict[bytes, CID] = {}
    root = EMPTY_NODE.cid
    for batch in batch_list:
        previous_root, previous = root, dict(reference)
        result = apply(root, batch, store.load)
        apply_reference(reference, batch)
        # exactly the new nodes: reachable from the new root and not from the old one
        store.nodes.update(result.new_nodes)
        root = result.root
        assert set(result.new_nodes) == reachable(root, store) - reachable(previous_root, store)
        for cid, node in result.new_nodes.items():
            assert node.cid == cid
            assert decode_node(node.to_bytes()).cid == cid  # every node is canonical
        assert list(walk(root, store.load)) == sorted(reference.items())
        assert root == build(sorted(reference.items())).root
        assert list(diff(previous_root, root, store.load)) == [
            Change(*change) for change in reference_diff(previous, reference)
        ]
        for key in KEY_POOL[::7] + [key for key, _ in batch]:
            assert get(root, key, store.load) == reference.get(key)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(keys, st.sampled_from(VALUES), max_size=60))
def test_roots_match_the_slow_reference_builder(items: dict[bytes, CID]) -> None:
    assert str(build(sorted(items.items())).root) == reference_root(items)


@settings(max_examples=100, deadline=None)
@given(trees, st.randoms(use_true_random=False))
def test_root_is_independent_of_insertion_order_and_batching(
    items: dict[bytes, CID], rng: random.Random
) -> None:
    expected = build(sorted(items.items())).root
    store = Store()
    for _ in range(2):
        order = list(items.items())
        rng.shuffle(order)
        root = EMPTY_NODE.cid
        position = 0
        while position < len(order):
            size = rng.randint(1, 10)
            result = apply(root, order[position : position + size], store.load)
            store.nodes.update(result.new_nodes)
            root = result.root
            position += size
        assert root == expected
    for order in (sorted(items.items()), sorted(items.items(), reverse=True)):
        root = EMPTY_NODE.cid
        for item in order:
            result = apply(root, [item], store.load)
            store.nodes.update(result.new_nodes)
            root = result.root
        assert root == expected


@settings(max_examples=100, deadline=None)
@given(
    trees,
    st.one_of(keys, st.binary(max_size=8)),
    st.booleans(),
)
def test_walk_from_any_start_matches_the_reference(
    items: dict[bytes, CID], start: bytes, after: bool
) -> None:
    store = Store()
    root = tree_of(items, store)
    expected = [(k, v) for k, v in sorted(items.items()) if k > start or (k == start and not after)]
    assert list(walk(root, store.load, start, after=after)) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(keys, st.sampled_from(VALUES), max_size=60),
    st.dictionaries(keys, st.sampled_from(VALUES), max_size=60),
)
def test_diff_between_any_two_trees_matches_the_reference(
    old: dict[bytes, CID], new: dict[bytes, CID]
) -> None:
    store = Store()
    old_root, new_root = tree_of(old, store), tree_of(new, store)
    expected = [Change(*change) for change in reference_diff(old, new)]
    assert list(diff(old_root, new_root, store.load)) == expected
    reverse = [Change(key, b, a) for key, a, b in expected]
    assert list(diff(new_root, old_root, store.load)) == reverse


def test_diff_of_every_pair_of_subsets_of_a_small_set() -> None:
    # Six keys over layers 0-2 (the interop naming gives the layer) and every state in which
    # each is absent or holds one of two values: 3**4 states for four keys, plus all 2**6
    # subsets of six keys with one value; diff of every ordered pair against the reference.
    six = [b"A0/374913", b"B1/986427", b"C2/014073", b"D0/952776", b"E0/670489", b"F1/085263"]
    states = [
        {key: VALUES[0] for key, keep in zip(six, mask, strict=True) if keep}
        for mask in itertools.product([False, True], repeat=6)
    ]
    states += [
        {key: VALUES[choice - 1] for key, choice in zip(six[:4], choice_of, strict=True) if choice}
        for choice_of in itertools.product([0, 1, 2], repeat=4)
    ]
    store = Store()
    roots = [tree_of(state, store) for state in states]
    for (old, old_root), (new, new_root) in itertools.product(
        list(zip(states, roots, strict=True)), repeat=2
    ):
        expected = [Change(*change) for change in reference_diff(old, new)]
        assert list(diff(old_root, new_root, store.load)) == expected


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, st.sampled_from(VALUES), max_size=60), st.lists(keys, max_size=20))
def test_get_matches_the_reference(items: dict[bytes, CID], probes: list[bytes]) -> None:
    store = Store()
    root = tree_of(items, store)
    for key in [*items, *probes]:
        assert get(root, key, store.load) == items.get(key)


@pytest.mark.parametrize("seed", range(4))
def test_random_batches_on_a_larger_tree_match_the_bulk_build(seed: int) -> None:
    rng = random.Random(seed)
    family = [b"photos/%d/%d.jpg" % (n % 97, n) for n in range(3_000)]
    reference = {key: VALUES[0] for key in rng.sample(family, 1_500)}
    store = Store()
    root = tree_of(reference, store)
    for _ in range(12):
        present = sorted(reference)
        batch: list[tuple[bytes, CID | None]] = [(key, None) for key in rng.sample(present, 60)]
        batch += [(key, rng.choice(VALUES)) for key in rng.sample(family, 60)]
        rng.shuffle(batch)
        previous, previous_root = dict(reference), root
        result = apply(root, batch, store.load)
        store.nodes.update(result.new_nodes)
        apply_reference(reference, batch)
        root = result.root
        assert root == build(sorted(reference.items())).root
        assert set(result.new_nodes) == reachable(root, store) - reachable(previous_root, store)
        assert len(list(diff(previous_root, root, store.load))) == len(
            reference_diff(previous, reference)
        )


def test_last_mutation_of_a_key_wins() -> None:
    store = Store()
    root = apply(EMPTY_NODE.cid, [(b"k", VALUES[0]), (b"k", None)], store.load).root
    assert root == EMPTY_NODE.cid
    result = apply(
        root, [(b"k", None), (b"k", VALUES[1]), (b"j", VALUES[0]), (b"k", VALUES[2])], store.load
    )
    store.nodes.update(result.new_nodes)
    assert list(walk(result.root, store.load)) == [(b"j", VALUES[0]), (b"k", VALUES[2])]


def test_no_op_mutations_create_no_nodes() -> None:
    store = Store()
    items = {b"k%03d" % n: VALUES[0] for n in range(200)}
    root = tree_of(items, store)
    result = apply(root, [(b"k005", VALUES[0]), (b"absent", None), (b"k999", None)], store.load)
    assert result.root == root
    assert result.new_nodes == {}


def test_replacing_a_key_between_the_same_neighbours_reuses_their_nodes() -> None:
    # Deleting y merges the subtrees either side of it; putting z (same layer, same gap)
    # splits them again into exactly the old nodes, which must not count as new.
    family = sorted(b"k%03d" % n for n in range(300))
    layer = relay.mst.key_layer
    for a, y, z, b in zip(family, family[1:], family[2:], family[3:], strict=False):
        if (layer(a), layer(y), layer(z), layer(b)) == (0, 1, 1, 0):
            break
    else:
        pytest.fail("no a<y<z<b with layers 0, 1, 1, 0 in the family")
    store = Store()
    root = tree_of({a: VALUES[0], y: VALUES[0], b: VALUES[0]}, store)
    result = apply(root, [(y, None), (z, VALUES[0])], store.load)
    store.nodes.update(result.new_nodes)
    assert set(result.new_nodes) == {result.root}
    assert set(result.new_nodes) == reachable(result.root, store) - reachable(root, store)


def test_build_rejects_unsorted_or_duplicate_keys() -> None:
    with pytest.raises(ValueError, match="sorted"):
        build([(b"b", VALUES[0]), (b"a", VALUES[0])])
    with pytest.raises(ValueError, match="sorted"):
        build([(b"a", VALUES[0]), (b"a", VALUES[1])])


def test_build_of_nothing_is_the_empty_tree() -> None:
    assert build([]).root == EMPTY_NODE.cid


def big_tree(count: int) -> tuple[Store, CID, dict[bytes, CID]]:
    store = Store()
    items = {
        b"photos/2024/%06d/IMG_%d.jpg" % (n * 7919 % count, n): VALUES[n % 3] for n in range(count)
    }
    return store, tree_of(items, store), items


def test_apply_touches_only_the_paths_of_its_mutations() -> None:
    store, root, items = big_tree(20_000)
    depth = max(
        len(walk_path)
        for walk_path in [relay.mst.search_path(root, k, store.load) for k in list(items)[:50]]
    )
    batch = [(b"photos/2024/%06d/new" % n, VALUES[1]) for n in range(0, 20_000, 2_000)]
    store.loads = 0
    result = apply(root, batch, store.load)
    # each of 10 new keys splits at most one path and rewrites one; a rebuild would be ~7,000
    assert store.loads <= 10 * 2 * depth
    assert len(result.new_nodes) <= 10 * 2 * depth
    store.nodes.update(result.new_nodes)
    assert get(result.root, batch[3][0], store.load) == VALUES[1]


def test_walk_from_a_start_loads_one_path_not_the_tree() -> None:
    store, root, items = big_tree(20_000)
    start = sorted(items)[12_345]
    store.loads = 0
    first = list(itertools.islice(walk(root, store.load, start), 3))
    assert [key for key, _ in first] == sorted(items)[12_345:12_348]
    assert store.loads <= 30


def test_diff_skips_identical_subtrees_without_loading_them() -> None:
    store, root, items = big_tree(20_000)
    key = sorted(items)[777]
    changed = apply(root, [(key, value_cid(99))], store.load)
    store.nodes.update(changed.new_nodes)
    store.loads = 0
    assert list(diff(root, changed.root, store.load)) == [Change(key, items[key], value_cid(99))]
    assert store.loads <= 2 * 2 * 15


# -- the asynchronous caller's protocol, simulated -----------------------------------------


class FetchOnMiss:
    """A cache that starts empty and is filled one MissingBlock at a time from a remote."""

    def __init__(self, remote: dict[CID, Node]) -> None:
        self.remote = remote
        self.local: dict[CID, Node] = {}
        self.misses = 0

    def load(self, cid: CID) -> Node:
        node = self.local.get(cid)
        if node is None:
            raise MissingBlock(cid)
        return node

    def fetch(self, missing: MissingBlock) -> None:
        self.misses += 1
        assert missing.cid not in self.local
        self.local[missing.cid] = self.remote[missing.cid]


def resumable_walk(root: CID, cache: FetchOnMiss) -> Iterator[tuple[bytes, CID]]:
    last: bytes | None = None
    while True:
        try:
            if last is None:
                iterator = walk(root, cache.load)
            else:
                iterator = walk(root, cache.load, last, after=True)
            for key, value in iterator:
                last = key
                yield key, value
            return
        except MissingBlock as missing:
            cache.fetch(missing)


@settings(max_examples=60, deadline=None)
@given(trees, batches)
def test_retrying_after_missing_blocks_reaches_the_same_results(
    initial: dict[bytes, CID], batch_list: list[list[tuple[bytes, CID | None]]]
) -> None:
    built = build(sorted(initial.items()))
    remote: dict[CID, Node] = dict(built.new_nodes)
    cache = FetchOnMiss(remote)
    reference = dict(initial)
    root = built.root
    for batch in batch_list:
        while True:
            try:
                result = apply(root, batch, cache.load)
                break
            except MissingBlock as missing:
                cache.fetch(missing)
        apply_reference(reference, batch)
        remote.update(result.new_nodes)
        previous_root, root = root, result.root
        assert root == build(sorted(reference.items())).root
        cache.local.clear()  # evict everything: the walk and diff must fetch their way
        assert list(resumable_walk(root, cache)) == sorted(reference.items())
        changes: list[Change] = []
        while True:
            try:
                for change in diff(previous_root, root, cache.load):
                    if not changes or change.key > changes[-1].key:
                        changes.append(change)
                break
            except MissingBlock as missing:
                cache.fetch(missing)
        assert [change.key for change in changes] == sorted(
            {key for key, _ in batch} & {c.key for c in changes}
        )


def test_a_resumed_walk_fetches_each_node_once() -> None:
    store, root, items = big_tree(3_000)
    cache = FetchOnMiss(store.nodes)
    assert list(resumable_walk(root, cache)) == sorted(items.items())
    assert cache.misses == len(reachable(root, store))


def test_apply_rejects_a_node_at_the_wrong_layer() -> None:
    family = [b"k%03d" % n for n in range(200)]
    layer0 = [key for key in family if relay.mst.key_layer(key) == 0]
    layer1 = [key for key in family if relay.mst.key_layer(key) == 1]
    # a layer-1 root whose left subtree is (wrongly) another layer-1 node
    wrong_child = Node(None, (relay.mst.Entry(layer1[1], VALUES[0], None),))
    fake_root = Node(wrong_child.cid, (relay.mst.Entry(layer1[2], VALUES[0], None),))
    nodes = {node.cid: node for node in (wrong_child, fake_root)}
    below = next(key for key in layer0 if key < layer1[1])
    with pytest.raises(MalformedNode):
        apply(fake_root.cid, [(below, VALUES[1])], nodes.__getitem__)


def test_mst_package_never_imports_trio_or_does_io() -> None:
    package = Path(relay.mst.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"trio", "anyio", "asyncio", "os", "socket"}, path
