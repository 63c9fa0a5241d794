"""DAG-CBOR: relay's fast path against the reference ``dag-cbor`` package, on an MST node
and a manifest (the shapes a batch commit and a listing encode and decode by the thousand).

Run: ``.venv/bin/python -m bench.bench_codec``
"""

from __future__ import annotations

import timeit
from typing import Any

import dag_cbor
import multiformats

from bench.common import save, table
from relay.bucket.manifest import Manifest
from relay.ipld import dagcbor
from relay.ipld.cid import CID

LEAF = CID.decode("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")


def _reference_value(value: Any) -> Any:
    if isinstance(value, CID):
        return multiformats.CID.decode(value.bytes)
    if isinstance(value, dict):
        return {k: _reference_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference_value(v) for v in value]
    return value


def _micros(statement: Any, number: int) -> float:
    return min(timeit.repeat(statement, number=number, repeat=3)) / number * 1e6


def main() -> None:
    node = {
        "l": LEAF,
        "e": [
            {
                "p": 0 if i == 0 else 9,
                "k": b"photos/2024/IMG_%04d.jpg"[(0 if i == 0 else 9) :] % i,
                "v": LEAF,
                "t": None if i % 2 else LEAF,
            }
            for i in range(6)
        ],
    }
    manifest = Manifest(
        key="photos/2024/IMG_0001.jpg",
        size=123456,
        body=LEAF,
        chunk_size=1 << 20,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        last_modified_ms=1_700_000_000_000,
        content_type="image/jpeg",
        metadata={"camera": "x100"},
        blake3=b"\x01" * 32,
    ).to_ipld()
    rows, result = [], {}
    for name, value in (("mst_node_6_entries", node), ("manifest", manifest)):
        fast = dagcbor.encode(value)
        reference_value = _reference_value(value)
        reference = dag_cbor.encode(reference_value)
        assert fast == reference, f"{name}: fast path differs from the reference"
        timings = {
            "relay_encode_us": _micros(lambda v=value: dagcbor.encode(v), 2000),
            "relay_decode_us": _micros(lambda b=fast: dagcbor.decode(b), 2000),
            "reference_encode_us": _micros(lambda v=reference_value: dag_cbor.encode(v), 200),
            "reference_decode_us": _micros(lambda b=fast: dag_cbor.decode(b), 50),
        }
        result[name] = timings
        rows += [
            (
                f"{name} encode",
                f"relay {timings['relay_encode_us']:.1f} us,"
                f" dag-cbor {timings['reference_encode_us']:.1f} us",
            ),
            (
                f"{name} decode",
                f"relay {timings['relay_decode_us']:.1f} us,"
                f" dag-cbor {timings['reference_decode_us']:.1f} us",
            ),
        ]
    cid_text = str(LEAF)
    result["cid_parse_us"] = {
        "relay": _micros(lambda: CID.decode(cid_text), 5000),
        "multiformats": _micros(lambda: multiformats.CID.decode(cid_text), 500),
    }
    rows.append(
        (
            "CID parse (base32 string)",
            f"relay {result['cid_parse_us']['relay']:.1f} us,"
            f" multiformats {result['cid_parse_us']['multiformats']:.1f} us",
        )
    )
    rows.append(("results", str(save("codec", result))))
    print(table(rows))


if __name__ == "__main__":
    main()
