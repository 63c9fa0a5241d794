"""The relay command: `relay cid`, `relay export`, `relay log`, run as a user would."""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dag_cbor
import multiformats
import pytest
import trio
from moto_upstream import moto_or_skip, stop_moto

from relay.config import Config, load_config
from relay.http.messages import SERVER_NAME
from relay.ipld.car import read_car
from relay.ipld.cid import CID, DAG_CBOR, DAG_PB, RAW
from relay.mst import decode_node
from relay.storage import open_storage
from relay.unixfs import decode_file_node
from relay.version import VERSION


def relay(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELAY_")},
        check=False,
    )


def mod251(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_relay_cid_prints_the_reference_importers_root(tmp_path: Path, vectors_dir: Path) -> None:
    vectors = json.loads((vectors_dir / "unixfs.json").read_text())["vectors"]
    checked = 0
    for vector in vectors:
        # Every chunk size ipfs takes, the 1 KiB vectors included (the engine's 16 KiB
        # floor is the engine's, not the hash tool's).
        if vector["generator"] != "mod251":
            continue
        path = tmp_path / f"{vector['name']}.bin"
        path.write_bytes(mod251(vector["size"]))
        result = relay(
            "cid",
            str(path),
            "--chunk-size",
            str(vector["chunk_size"]),
            "--width",
            str(vector["width"]),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == vector["root"], vector["name"]
        checked += 1
    assert checked >= 5, "the vectors should hold small mod251 files"
    small = [v for v in vectors if v["generator"] == "mod251" and v["chunk_size"] < 16 << 10]
    assert small, "the vectors should hold chunk sizes below the engine's 16 KiB floor"


@pytest.mark.parametrize("size", ["0", "-5", str((16 << 20) + 1)])
def test_relay_cid_refuses_a_chunk_size_out_of_range(tmp_path: Path, size: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    result = relay("cid", str(path), "--chunk-size", size)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "relay: --chunk-size must be from 1 to 16777216 bytes"
    ]


async def one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def fill_bucket(data_dir: Path, config: Config | None = None) -> dict[str, bytes]:
    bodies = {"a.txt": b"hello", "dir/big.bin": os.urandom(3 << 20), "empty": b""}
    async with open_storage(config or load_config(data_dir=data_dir, environ={})) as engine:
        await engine.create_bucket("photos")
        for key, data in bodies.items():
            await engine.put_object("photos", key, one_piece(data))
        await engine.delete_object("photos", "a.txt")
        await engine.put_object("photos", "a.txt", one_piece(bodies["a.txt"]))
    return bodies


def reachable(root: CID, blocks: dict[CID, bytes]) -> set[CID]:
    """Every CID reachable from ``root``, decoding each block by its codec."""
    seen: set[CID] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        if cid not in blocks:
            continue
        if cid.codec == DAG_CBOR:
            value = dag_cbor.decode(blocks[cid])
            stack.extend(_links(value))
        elif cid.codec == DAG_PB:
            stack.extend(link.cid for link in decode_file_node(blocks[cid]).links)
    return seen


def _links(value: object) -> list[CID]:
    if isinstance(value, multiformats.CID):
        return [CID.from_bytes(bytes(value))]
    if isinstance(value, dict):
        return [link for item in value.values() for link in _links(item)]
    if isinstance(value, list):
        return [link for item in value for link in _links(item)]
    return []


@pytest.mark.parametrize("no_data", [False, True])
def test_export_writes_a_verifiable_car_of_everything_reachable(
    tmp_path: Path, no_data: bool
) -> None:
    data_dir = tmp_path / "data"
    bodies = trio.run(fill_bucket, data_dir)
    out = tmp_path / "photos.car"
    args = ["export", "photos", "-o", str(out), "--data", str(data_dir)]
    result = relay(*args, *(["--no-data"] if no_data else []))
    assert result.returncode == 0, result.stderr

    header, sections = read_car(out.read_bytes(), verify=True)  # every block's hash checked
    blocks = {block.cid: block.data for block in sections}
    assert len(header.roots) == 1
    root = header.roots[0]
    decode_node(blocks[root])  # the root is an MST node
    needed = reachable(root, blocks)
    raw = {cid for cid in needed if cid.codec == RAW}
    structural = needed - raw
    assert structural <= set(blocks), "every MST node, manifest and UnixFS node is in the CAR"
    if no_data:
        assert not raw & set(blocks)
    else:
        assert raw <= set(blocks)
        chunked = b"".join(blocks[cid] for cid in sorted(raw, key=lambda c: c.bytes))
        assert len(chunked) == sum(len(b) for b in bodies.values())
    assert set(blocks) <= needed, "nothing unreachable is exported"


def test_log_lists_commits_newest_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill_bucket, data_dir)
    result = relay("log", "photos", "--data", str(data_dir))
    assert result.returncode == 0, result.stderr
    versions = [int(line.split()[0]) for line in result.stdout.splitlines()]
    assert versions == sorted(versions, reverse=True)
    assert versions[-1] == 0
    missing = relay("log", "nope", "--data", str(data_dir))
    assert missing.returncode == 1
    assert "nope" in missing.stderr


def test_log_works_beside_a_running_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill_bucket, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(RELAY_ACCESS_KEY_ID="k", RELAY_SECRET_ACCESS_KEY="s")
    server = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--data", str(data_dir), "--listen",
         "127.0.0.1:0", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert "serving S3" in server.stdout.readline()
        result = relay("log", "photos", "--data", str(data_dir))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].split()[0] == "0"
    finally:
        server.terminate()
        assert server.stdout is not None
        server.stdout.read()
        server.stdout.close()
        server.wait(timeout=30)


def test_version_is_printed_and_served() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"relay {VERSION}"
    assert VERSION == importlib.metadata.version("relay")
    assert SERVER_NAME == f"relay/{VERSION}".encode()


# -- failures: one line and a documented exit code -------------------------------------


def one_line_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("relay: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_missing_bucket_is_one_line_and_leaves_no_partial_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill_bucket, data_dir)
    out = tmp_path / "nope.car"
    for args in (
        ["ls", "nope"],
        ["log", "nope"],
        ["export", "nope", "-o", str(out)],
    ):
        line = one_line_failure(relay(*args, "--data", str(data_dir)), 1)
        assert line == "relay: bucket 'nope' does not exist", args
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
    debug = relay("--debug", "ls", "nope", "--data", str(data_dir))
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr  # --debug shows where it failed


def test_a_store_open_in_another_process_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill_bucket, data_dir)
    lock = os.open(data_dir / "blobs" / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = one_line_failure(relay("ls", "photos", "--data", str(data_dir)), 1)
    finally:
        os.close(lock)
    assert "open in another process" in line


def test_bad_arguments_and_a_missing_data_directory_are_usage_errors(tmp_path: Path) -> None:
    line = one_line_failure(relay("ls", "photos", "--data", str(tmp_path / "absent")), 2)
    assert "no relay data directory" in line
    assert not (tmp_path / "absent").exists()  # a read does not create a data directory
    assert relay("ls").returncode == 2  # argparse: the bucket is missing
    missing_file = one_line_failure(relay("cid", str(tmp_path / "absent.bin")), 1)
    assert "absent.bin" in missing_file


def test_an_unreachable_upstream_is_one_line(tmp_path: Path) -> None:
    moto = moto_or_skip(tmp_path)
    try:
        bucket = moto.new_bucket()
        config_file = tmp_path / "relay.toml"
        config_file.write_text(
            f'[store]\nkind = "s3"\n[store.s3]\nendpoint = "{moto.endpoint}"\n'
            f'bucket = "{bucket}"\naccess_key_id = "{moto.access_key}"\n'
            f'secret_access_key = "{moto.secret_key}"\n'
        )
        config = load_config(config_file, data_dir=tmp_path / "data")
        trio.run(fill_bucket, tmp_path / "data", config)
    finally:
        stop_moto(moto.process)
    env_args = ["--config", str(config_file), "--data", str(tmp_path / "data")]
    line = one_line_failure(relay("ls", "photos", *env_args), 1)
    assert line.startswith("relay: upstream GET "), line
    assert "cannot connect" in line
