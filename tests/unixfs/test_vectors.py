"""Root CIDs from ipfs-unixfs-importer / @ipld/unixfs (../shared/vectors/unixfs.json).

Each distinct file is generated once, streaming, and fed to one hasher per (chunk size,
width) entry for it, so the 45 MB files are read once and never held in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from unixfs_reference import dag_pb_file_node, mod251, pb_fields, sha256_counter

from relay.ipld.cid import CID
from relay.unixfs import FileBuilder, FileHasher, decode_file_node

VECTORS_FILE = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "unixfs.json"
# Today's largest vectors (45 MB) take ~0.7 s each; anything far bigger is marked slow.
SLOW_BYTES = 256 << 20


def _load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())["vectors"]
    return vectors


def _file_key(vector: dict[str, Any]) -> tuple[str, str, int]:
    return (vector["generator"], vector.get("seed", ""), vector["size"])


def _grouped() -> list[Any]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for vector in _load_vectors():
        groups.setdefault(_file_key(vector), []).append(vector)
    params = []
    for key, entries in groups.items():
        marks = [pytest.mark.slow] if key[2] > SLOW_BYTES else []
        params.append(pytest.param(entries, id=f"{entries[0]['name']}-{key[0]}", marks=marks))
    return params


def _generate(vector: dict[str, Any]) -> Iterator[bytes]:
    if vector["generator"] == "sha256-counter":
        return sha256_counter(vector["seed"].encode(), vector["size"])
    if vector["generator"] == "mod251":
        return mod251(vector["size"])
    raise AssertionError(f"unknown generator {vector['generator']}")


def test_the_vectors_file_is_where_the_fixture_says(vectors_dir: Path) -> None:
    assert VECTORS_FILE == vectors_dir / "unixfs.json"
    assert len(_load_vectors()) >= 20


@pytest.mark.parametrize("entries", _grouped())
def test_root_cid_matches_reference_importer(entries: list[dict[str, Any]]) -> None:
    hashers = [FileHasher(entry["chunk_size"], entry["width"]) for entry in entries]
    content_hash = hashlib.sha256()
    for piece in _generate(entries[0]):
        content_hash.update(piece)
        for hasher in hashers:
            hasher.update(piece)
    for entry, hasher in zip(entries, hashers, strict=True):
        if "sha256" in entry:
            assert content_hash.hexdigest() == entry["sha256"], "generator disagrees"
        root = hasher.finish()
        label = f"{entry['name']} chunk {entry['chunk_size']} width {entry['width']}"
        assert str(root.cid) == entry["root"], label
        assert root.size == entry["size"]
        if "depth" in entry:
            assert root.depth == entry["depth"], label
        if "leaf_count" in entry:
            assert root.leaf_count == entry["leaf_count"], label


def test_two_leaf_root_bytes_match_an_independent_encoding() -> None:
    # mod251-1048577 at 1 MiB / 1024: one full leaf and a one-byte leaf under one node.
    data = b"".join(mod251(1048577))
    leaves = [data[: 1 << 20], data[1 << 20 :]]
    leaf_cids = [CID.raw_sha256(hashlib.sha256(leaf).digest()) for leaf in leaves]
    builder = FileBuilder(1024)
    for cid, leaf in zip(leaf_cids, leaves, strict=True):
        assert builder.add_leaf(cid, len(leaf)) == []
    root = builder.finish()
    [block] = root.blocks
    expected = dag_pb_file_node(
        [(cid.bytes, len(leaf), len(leaf)) for cid, leaf in zip(leaf_cids, leaves, strict=True)],
        len(data),
    )
    assert block.data == expected
    assert str(block.cid) == "bafybeidjogjfwuhbzwopgd4bn3skcf5m6oz72xshywcndzxgqb623nfclu"
    assert block.cid == root.cid
    assert root.tsize == len(block.data) + len(data)

    # And read back with a generic protobuf reader: links first, empty names, unpacked sizes.
    fields = pb_fields(block.data)
    assert [number for number, _ in fields] == [2, 2, 1]
    for (_, link), cid, leaf in zip(fields[:2], leaf_cids, leaves, strict=True):
        assert isinstance(link, bytes)
        assert pb_fields(link) == [(1, cid.bytes), (2, b""), (3, len(leaf))]
        assert b"\x12\x00" in link
    unixfs = fields[2][1]
    assert isinstance(unixfs, bytes)
    assert pb_fields(unixfs) == [(1, 2), (3, len(data)), (4, 1 << 20), (4, 1)]
    node = decode_file_node(block.data)
    assert node.blocksizes == (1 << 20, 1)
    assert node.filesize == len(data)
