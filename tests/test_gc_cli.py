"""`relay gc`, `relay fsck` and what `relay log` says of retention, run as a user would,
over the disk store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from relay.config import load_config
from relay.storage import open_storage

# Blobs count as old at once, and no history is kept: what a test needs to see it all go.
COLLECT_NOW = {"RELAY_GC_GRACE_SECONDS": "0", "RELAY_GC_HISTORY_RETENTION_SECONDS": "0"}
# A chunk no other object shares, easy to find in a pack file.
FLIPPED = b"\xab" * 40_000 + b"find me in the pack"


def relay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


async def one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def fill(data_dir: Path) -> None:
    async with open_storage(load_config(data_dir=data_dir, environ={})) as engine:
        await engine.create_bucket("photos")
        await engine.put_object("photos", "keep.bin", one_piece(os.urandom(3 << 20)))
        await engine.put_object("photos", "flip.bin", one_piece(FLIPPED))
        await engine.put_object("photos", "gone.bin", one_piece(os.urandom(2 << 20)))
        await engine.delete_object("photos", "gone.bin")


def flip_a_byte_of(data_dir: Path, needle: bytes) -> None:
    for pack in sorted((data_dir / "blobs" / "packs").glob("*.pack")):
        content = bytearray(pack.read_bytes())
        at = content.find(needle)
        if at >= 0:
            content[at + len(needle) - 1] ^= 0x01
            pack.write_bytes(bytes(content))
            return
    raise AssertionError("the chunk is in no pack")


def test_gc_dry_run_deletes_nothing_and_gc_deletes_what_it_said(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill, data_dir)

    kept = relay("gc", "--data", str(data_dir))  # the default grace keeps everything
    assert kept.returncode == 0, kept.stderr
    assert "deleted 0 blobs" in kept.stdout

    dry = relay("gc", "--dry-run", "--data", str(data_dir), env=COLLECT_NOW)
    assert dry.returncode == 0, dry.stderr
    # gone.bin's two chunks and index CAR, and commit CARs no retained root reaches.
    doomed = re.search(r"would delete (\d+) blobs \(2\.0 MiB\)", dry.stdout)
    assert doomed is not None, dry.stdout
    assert int(doomed.group(1)) >= 3
    again = relay("gc", "--dry-run", "--data", str(data_dir), env=COLLECT_NOW)
    assert f"would delete {doomed.group(1)} blobs" in again.stdout  # the dry run deleted nothing

    real = relay("gc", "--data", str(data_dir), env=COLLECT_NOW)
    assert real.returncode == 0, real.stderr
    assert f"deleted {doomed.group(1)} blobs (2.0 MiB)" in real.stdout
    after = relay("gc", "--dry-run", "--data", str(data_dir), env=COLLECT_NOW)
    assert "would delete 0 blobs" in after.stdout

    check = relay("fsck", "--json", "--data", str(data_dir), env=COLLECT_NOW)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["orphans"] == {"blobs": 0, "bytes": 0}


def test_fsck_of_a_clean_store_exits_0_with_its_report(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill, data_dir)
    text = relay("fsck", "--data", str(data_dir))
    assert text.returncode == 0, text.stderr
    assert "relay fsck: clean" in text.stdout
    report = json.loads(relay("fsck", "photos", "--json", "--data", str(data_dir)).stdout)
    assert report["clean"] is True
    assert report["problems"] == []
    assert report["roots"] >= 1
    assert report["chunks_checked"] >= 6  # keep.bin's 3, flip.bin's, gone.bin's 2 (history)
    assert report["orphans"] is None  # only some buckets checked: orphans are not counted
    missing = relay("fsck", "nope", "--data", str(data_dir))
    assert missing.returncode == 1
    assert "nope" in missing.stderr


def test_fsck_finds_a_byte_flipped_in_a_pack_and_names_the_object(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill, data_dir)
    flip_a_byte_of(data_dir, FLIPPED[-30:])

    found = relay("fsck", "--json", "--data", str(data_dir))
    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout)
    assert report["clean"] is False
    [problem] = report["problems"]
    assert (problem["bucket"], problem["key"], problem["block"], problem["problem"]) == (
        "photos",
        "flip.bin",
        "chunk",
        "corrupt",
    )
    assert isinstance(problem["version"], int)

    # The store forgot the damaged copy when fsck read it: now it is missing, still named.
    text = relay("fsck", "--data", str(data_dir))
    assert text.returncode == 1
    assert "photos/flip.bin" in text.stdout


def test_log_shows_which_versions_are_still_readable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    trio.run(fill, data_dir)
    kept = relay("log", "photos", "--data", str(data_dir))
    assert "expired" not in kept.stdout
    lines = relay("log", "photos", "--data", str(data_dir), env=COLLECT_NOW).stdout.splitlines()
    assert "expired" not in lines[0]  # the current version is always readable
    assert all("(expired: no longer readable)" in line for line in lines[1:])
    old = relay("export", "photos", "--version", "1", "-o", str(tmp_path / "x.car"),
                "--data", str(data_dir), env=COLLECT_NOW)  # fmt: skip
    assert old.returncode == 1
    assert "history retention" in old.stderr
