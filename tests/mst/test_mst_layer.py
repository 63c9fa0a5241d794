"""key_layer and common_prefix_length against the atproto interop fixtures and references."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from mst_reference import reference_layer, reference_prefix

from relay.mst import common_prefix_length, key_layer


def test_key_layer_matches_interop_key_heights(vectors_dir: Path) -> None:
    cases = json.loads((vectors_dir / "mst" / "key_heights.json").read_text())
    assert cases
    for case in cases:
        assert key_layer(case["key"].encode()) == case["height"], case


def test_common_prefix_matches_interop_fixture(vectors_dir: Path) -> None:
    cases = json.loads((vectors_dir / "mst" / "common_prefix.json").read_text())
    assert cases
    for case in cases:
        left, right = case["left"].encode(), case["right"].encode()
        assert common_prefix_length(left, right) == case["len"], case


def test_example_keys_layers_match_the_digit_in_their_name(vectors_dir: Path) -> None:
    # The interop example keys are named <letter><layer>/<digits>.
    lines = (vectors_dir / "mst" / "example_keys.txt").read_text().split()
    assert len(lines) > 100
    for line in lines:
        assert key_layer(line.encode()) == int(line[1]), line


@given(st.binary(max_size=40))
def test_key_layer_counts_leading_zero_bit_pairs(key: bytes) -> None:
    assert key_layer(key) == reference_layer(key)


@given(st.binary(max_size=12), st.binary(max_size=12), st.binary(max_size=12))
def test_common_prefix_length_matches_a_byte_loop(shared: bytes, left: bytes, right: bytes) -> None:
    assert common_prefix_length(shared + left, shared + right) == reference_prefix(
        shared + left, shared + right
    )
