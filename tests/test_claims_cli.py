"""`relay claims import` / `relay claims export`: location claims as JSON lines."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import multiformats
import pytest
import trio

from relay.claims import format_claims, parse_claims
from relay.cli import main
from relay.config import load_config
from relay.ipld.base import b58encode
from relay.registry.base import Claim
from relay.storage import open_registry

DATA_A = b"claimed bytes"
MH_A = b"\x12\x20" + hashlib.sha256(DATA_A).digest()
MH_B = b"\x12\x20" + hashlib.sha256(b"other bytes").digest()
Z_A = "z" + b58encode(MH_A)
# The same content as a CIDv1 (raw and dag-pb codecs), base32 and base58, and a CIDv0,
# spelled by the reference implementation rather than relay's own CID code.
CID_RAW_B32 = str(multiformats.CID("base32", 1, "raw", MH_A))
CID_PB_B58 = str(multiformats.CID("base58btc", 1, "dag-pb", MH_A))
CID_V0 = str(multiformats.CID("base58btc", 0, "dag-pb", MH_A))


def claims_in(data_dir: Path) -> list[Claim]:
    async def read() -> list[Claim]:
        async with open_registry(load_config(data_dir=data_dir, environ={})) as registry:
            return await registry.all_claims()

    return trio.run(read)


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("content", [Z_A, CID_RAW_B32, CID_PB_B58, CID_V0])
def test_content_may_be_any_cid_form_or_a_z_multihash(content: str) -> None:
    (claim,) = parse_claims([json.dumps({"content": content, "location": ["https://a.example/x"]})])
    assert claim.content == MH_A


def test_import_adds_one_claim_per_location_with_the_range(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "claims.jsonl",
        {
            "content": CID_RAW_B32,
            "location": ["https://a.example/x", "s3://bucket/key"],
            "range": {"offset": 10, "length": 20},
        },
        {"content": Z_A, "location": ["https://b.example/y"]},
    )
    assert main(["claims", "import", str(source), "--data", str(tmp_path / "data")]) == 0
    assert sorted(claims_in(tmp_path / "data"), key=lambda c: c.url) == [
        Claim(MH_A, "https://a.example/x", 10, 20),
        Claim(MH_A, "https://b.example/y", None, None),
        Claim(MH_A, "s3://bucket/key", 10, 20),
    ]


def test_import_reads_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = json.dumps({"content": Z_A, "location": ["https://a.example/x"]})
    monkeypatch.setattr("sys.stdin", io.StringIO(line + "\n"))
    assert main(["claims", "import", "-", "--data", str(tmp_path)]) == 0
    assert claims_in(tmp_path) == [Claim(MH_A, "https://a.example/x")]


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ("not json", "not JSON"),
        ({"content": "bafynotacid", "location": ["https://a.example/x"]}, "neither a CID"),
        ({"content": Z_A, "location": []}, "non-empty list"),
        ({"content": Z_A, "location": ["ftp://a.example/x"]}, "not an absolute"),
        ({"content": Z_A, "location": ["https://a/x"], "range": {"offset": -1}}, "non-negative"),
        ({"content": Z_A, "location": ["https://a/x"], "range": {"length": 5}}, "offset"),
        ({"content": Z_A, "location": ["https://a/x"], "locations": []}, "unknown field"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: object, complaint: str
) -> None:
    good = {"content": Z_A, "location": ["https://a.example/x"]}
    source = tmp_path / "claims.jsonl"
    bad_line = bad if isinstance(bad, str) else json.dumps(bad)
    source.write_text(json.dumps(good) + "\n\n" + bad_line + "\n" + json.dumps(good) + "\n")
    assert main(["claims", "import", str(source), "--data", str(tmp_path / "data")]) == 1
    error = capsys.readouterr().err
    assert "line 3:" in error
    assert complaint in error
    assert claims_in(tmp_path / "data") == []


def test_export_then_import_reproduces_the_claims(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims = [
        Claim(MH_A, "https://a.example/x", 0, 100),
        Claim(MH_A, "https://b.example/y", 0, 100),
        Claim(MH_A, "https://c.example/whole"),
        Claim(MH_B, "http://127.0.0.1:9/bucket/zQm/zQm.blob", 5, None),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in format_claims(claims)))
    assert main(["claims", "import", str(source), "--data", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main(["claims", "export", "--data", str(tmp_path / "one")]) == 0
    exported = capsys.readouterr().out
    lines = [json.loads(line) for line in exported.splitlines()]
    assert {"content": Z_A, "location": ["https://c.example/whole"]} in lines
    assert {
        "content": Z_A,
        "location": ["https://a.example/x", "https://b.example/y"],
        "range": {"offset": 0, "length": 100},
    } in lines
    out_file = tmp_path / "out.jsonl"
    assert main(["claims", "export", "-o", str(out_file), "--data", str(tmp_path / "one")]) == 0
    assert out_file.read_text() == exported
    assert main(["claims", "import", str(out_file), "--data", str(tmp_path / "two")]) == 0
    assert claims_in(tmp_path / "two") == claims_in(tmp_path / "one")
    assert sorted(claims_in(tmp_path / "two"), key=lambda c: (c.content, c.url)) == sorted(
        claims, key=lambda c: (c.content, c.url)
    )
