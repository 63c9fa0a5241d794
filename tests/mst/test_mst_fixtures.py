"""Roots and proofs from atproto: known maps, commit proofs, the interop example keys."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from mst_reference import VALUES, reference_root

from relay.ipld.cid import CID
from relay.mst import EMPTY_NODE, MissingBlock, Node, apply, build, covering_proof, walk


def load_json(vectors_dir: Path, name: str) -> Any:
    return json.loads((vectors_dir / "mst" / name).read_text())


def test_known_maps_have_known_roots(vectors_dir: Path) -> None:
    fixture = load_json(vectors_dir, "mst-known-maps.json")
    value = CID.decode(fixture["value"])
    assert len(fixture["cases"]) >= 10
    for case in fixture["cases"]:
        items = sorted((key.encode(), value) for key in case["keys"])
        assert str(build(items).root) == case["root"], case["name"]
        one_by_one = EMPTY_NODE.cid
        store: dict[CID, Node] = {}
        for item in reversed(items):
            result = apply(one_by_one, [item], store.__getitem__)
            store.update(result.new_nodes)
            one_by_one = result.root
        assert str(one_by_one) == case["root"], case["name"]


def commit_cases(vectors_dir: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = load_json(vectors_dir, "commit-proof-fixtures.json")
    assert cases
    return cases


def test_commit_fixtures_roots_before_and_after(vectors_dir: Path) -> None:
    for case in commit_cases(vectors_dir):
        leaf = CID.decode(case["leafValue"])
        before = build(sorted((key.encode(), leaf) for key in case["keys"]))
        assert str(before.root) == case["rootBeforeCommit"], case["comment"]
        store = dict(before.new_nodes)
        batch = [(k.encode(), leaf) for k in case["adds"]] + [
            (k.encode(), None) for k in case["dels"]
        ]
        after = apply(before.root, batch, store.__getitem__)
        assert str(after.root) == case["rootAfterCommit"], case["comment"]


def test_commit_fixtures_blocks_in_proof_are_exactly_the_covering_proofs(
    vectors_dir: Path,
) -> None:
    # atproto's proof for a commit: for each added or deleted key, the nodes of the AFTER
    # tree on the key's search path and on the paths to its left and right neighbours.
    for case in commit_cases(vectors_dir):
        leaf = CID.decode(case["leafValue"])
        after = build(
            sorted(
                {
                    key.encode(): leaf
                    for key in case["keys"] + case["adds"]
                    if key not in case["dels"]
                }.items()
            )
        )
        assert str(after.root) == case["rootAfterCommit"]
        proof: set[CID] = set()
        for key in case["adds"] + case["dels"]:
            proof |= covering_proof(after.root, key.encode(), after.new_nodes.__getitem__)
        assert proof == {CID.decode(cid) for cid in case["blocksInProof"]}, case["comment"]


class ProofOnly:
    """A loader holding only a commit's proof blocks, plus what the inversion itself made."""

    def __init__(self, proof: dict[CID, Node]) -> None:
        self.blocks = dict(proof)

    def load(self, cid: CID) -> Node:
        try:
            return self.blocks[cid]
        except KeyError:
            raise MissingBlock(cid) from None


def test_commit_fixtures_invert_from_the_proof_blocks_alone(vectors_dir: Path) -> None:
    # What the proof is for: undoing the commit with nothing but its blocks, in any order.
    for case in commit_cases(vectors_dir):
        leaf = CID.decode(case["leafValue"])
        before = build(sorted((key.encode(), leaf) for key in case["keys"]))
        store = dict(before.new_nodes)
        batch = [(k.encode(), leaf) for k in case["adds"]] + [
            (k.encode(), None) for k in case["dels"]
        ]
        after = apply(before.root, batch, store.__getitem__)
        store.update(after.new_nodes)
        proof = {CID.decode(cid): store[CID.decode(cid)] for cid in case["blocksInProof"]}

        inverse = [(k.encode(), None) for k in case["adds"]] + [
            (k.encode(), leaf) for k in case["dels"]
        ]
        for order in itertools.permutations(inverse):
            blocks = ProofOnly(proof)
            root = after.root
            for mutation in order:
                result = apply(root, [mutation], blocks.load)
                blocks.blocks.update(result.new_nodes)
                root = result.root
            assert str(root) == case["rootBeforeCommit"], (case["comment"], order)
        inverted = apply(after.root, inverse, ProofOnly(proof).load)
        assert str(inverted.root) == case["rootBeforeCommit"]


def test_example_keys_give_one_root_whatever_the_order(vectors_dir: Path) -> None:
    keys = [
        line.encode() for line in (vectors_dir / "mst" / "example_keys.txt").read_text().split()
    ]
    items = {key: VALUES[index % 3] for index, key in enumerate(keys)}
    built = build(sorted(items.items()))
    assert str(built.root) == reference_root(items)
    store = dict(built.new_nodes)
    assert list(walk(built.root, store.__getitem__)) == sorted(items.items())
    shuffled = list(items.items())
    random.Random(7).shuffle(shuffled)
    for batch_size in (1, 7, len(shuffled)):
        root = EMPTY_NODE.cid
        for start in range(0, len(shuffled), batch_size):
            result = apply(root, shuffled[start : start + batch_size], store.__getitem__)
            store.update(result.new_nodes)
            root = result.root
        assert root == built.root, batch_size


@pytest.mark.parametrize("drop", [0, 1, 2])
def test_example_keys_deleting_down_to_nothing_gives_the_empty_root(
    vectors_dir: Path, drop: int
) -> None:
    keys = [
        line.encode() for line in (vectors_dir / "mst" / "example_keys.txt").read_text().split()
    ]
    built = build(sorted((key, VALUES[0]) for key in keys))
    store = dict(built.new_nodes)
    root = built.root
    order = keys[drop::3] + [key for index, key in enumerate(keys) if index % 3 != drop]
    for start in range(0, len(order), 10):
        result = apply(root, [(key, None) for key in order[start : start + 10]], store.__getitem__)
        store.update(result.new_nodes)
        root = result.root
        remaining = {key: VALUES[0] for key in order[start + 10 :]}
        assert str(root) == reference_root(remaining)
    assert root == EMPTY_NODE.cid
