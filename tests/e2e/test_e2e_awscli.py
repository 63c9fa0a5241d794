"""The aws CLI against a real relay: mb, cp (single and multipart), sync both ways, ls,
rm, and a few s3api calls. Every comparison is byte for byte against the local files.

The tree is 1,000 small files (0–8 KiB, nested directories, names with spaces, ``+`` and
unicode) plus one 200 MiB file that the CLI uploads and downloads in multipart pieces.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import VENV_BIN, RelayProcess

MiB = 1 << 20
SMALL_FILES = 1000
BIG_FILE_BYTES = 200 * MiB
CLI_TIMEOUT_SECONDS = 300
# The CLI's defaults: multipart from 8 MiB up, in 8 MiB parts.
CLI_PART_BYTES = 8 * MiB


def aws(relay: RelayProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(VENV_BIN / "aws"), "--endpoint-url", relay.endpoint, *args],
        env=relay.client_env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"aws {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def s3api(relay: RelayProcess, *args: str) -> Any:
    output = aws(relay, "s3api", *args, "--output", "json").stdout
    return json.loads(output) if output.strip() else None


def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def write_big_file(path: Path, size: int) -> None:
    """Fast and incompressible: fresh random blocks, each stamped with its index."""
    block = 4 * MiB
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for index in range(0, size, block):
            piece = os.urandom(min(block, size - index))
            out.write(index.to_bytes(8, "big") + piece[8:] if len(piece) >= 8 else piece)


SPECIAL_NAMES = (
    "with space.txt",
    "two  spaces/and more.bin",
    "plus+sign+.dat",
    "a+b c/d+e f.txt",
    "ünïcødé/файл.txt",
    "日本語/テスト ファイル.txt",
    "emoji/🚀 launch+.bin",
    "percent%20literal.txt",
)


def make_tree(root: Path, count: int, seed: int) -> dict[str, bytes]:
    """``count`` small files under ``root``; returns key (relative posix path) -> bytes."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    names = list(SPECIAL_NAMES)
    while len(names) < count:
        depth = rng.randrange(0, 4)
        parts = [
            f"dir{rng.randrange(8)}" if level == 0 else f"sub{rng.randrange(4)}"
            for level in range(depth)
        ]
        name = "/".join([*parts, f"file-{len(names):04d}.bin"])
        names.append(name)
    for name in names[:count]:
        data = random_bytes(rng, rng.randrange(0, 8 * 1024 + 1))
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name] = data
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as source:
        while chunk := source.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def multipart_etag(path: Path, part_bytes: int) -> str:
    digests = []
    with path.open("rb") as source:
        while chunk := source.read(part_bytes):
            digests.append(hashlib.md5(chunk).digest())
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def same_file(left: Path, right: Path) -> bool:
    if left.stat().st_size != right.stat().st_size:
        return False
    with left.open("rb") as a, right.open("rb") as b:
        while True:
            x, y = a.read(4 * MiB), b.read(4 * MiB)
            if x != y:
                return False
            if not x:
                return True


# -- cp ----------------------------------------------------------------------------------


def test_mb_and_cp_up_and_down(
    relay_server: RelayProcess, tmp_path: Path, bucket_name: str
) -> None:
    result = aws(relay_server, "s3", "mb", f"s3://{bucket_name}")
    assert result.stdout.strip() == f"make_bucket: {bucket_name}"

    small = tmp_path / "small.txt"
    small.write_bytes(b"hello relay\n" * 100)
    big = tmp_path / "big.bin"
    write_big_file(big, 20 * MiB)
    aws(relay_server, "s3", "cp", "--no-progress", str(small), f"s3://{bucket_name}/small.txt")
    aws(relay_server, "s3", "cp", "--no-progress", str(big), f"s3://{bucket_name}/dir/big.bin")

    down = tmp_path / "down"
    aws(relay_server, "s3", "cp", "--no-progress", f"s3://{bucket_name}/small.txt", str(down / "s"))
    aws(
        relay_server,
        "s3",
        "cp",
        "--no-progress",
        f"s3://{bucket_name}/dir/big.bin",
        str(down / "b"),
    )
    assert (down / "s").read_bytes() == small.read_bytes()
    assert same_file(down / "b", big)

    head = s3api(relay_server, "head-object", "--bucket", bucket_name, "--key", "small.txt")
    assert head["ContentLength"] == small.stat().st_size
    assert head["ETag"] == f'"{file_md5(small)}"'
    assert head["ContentType"] == "text/plain"  # the CLI guesses it from the extension
    big_head = s3api(relay_server, "head-object", "--bucket", bucket_name, "--key", "dir/big.bin")
    assert big_head["ContentLength"] == 20 * MiB
    # The CLI sent it as a multipart upload: the ETag says so and how.
    assert big_head["ETag"] == multipart_etag(big, CLI_PART_BYTES)


def test_cp_of_a_missing_key_fails(
    relay_server: RelayProcess, tmp_path: Path, bucket_name: str
) -> None:
    aws(relay_server, "s3", "mb", f"s3://{bucket_name}")
    result = aws(
        relay_server, "s3", "cp", f"s3://{bucket_name}/nope", str(tmp_path / "x"), check=False
    )
    assert result.returncode != 0
    assert "404" in result.stderr
    assert not (tmp_path / "x").exists()


# -- sync of a large tree ----------------------------------------------------------------


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("tree")
    files = make_tree(root, SMALL_FILES, seed=20)
    write_big_file(root / "big" / "two hundred.bin", BIG_FILE_BYTES)
    return root, files


@pytest.fixture(scope="module")
def synced_bucket(relay_server: RelayProcess, big_tree: tuple[Path, dict[str, bytes]]) -> str:
    bucket = "synced-tree"
    root, files = big_tree
    aws(relay_server, "s3", "mb", f"s3://{bucket}")
    result = aws(relay_server, "s3", "sync", "--no-progress", str(root), f"s3://{bucket}")
    uploaded = [line for line in result.stdout.splitlines() if line.startswith("upload: ")]
    assert len(uploaded) == len(files) + 1, result.stdout[-2000:]
    return bucket


def expected_keys(files: dict[str, bytes]) -> list[str]:
    return sorted([*files, "big/two hundred.bin"], key=lambda key: key.encode())


@pytest.mark.slow
def test_sync_down_reproduces_every_file(
    relay_server: RelayProcess,
    big_tree: tuple[Path, dict[str, bytes]],
    synced_bucket: str,
    tmp_path: Path,
) -> None:
    root, files = big_tree
    down = tmp_path / "down"
    down.mkdir()
    result = aws(relay_server, "s3", "sync", "--no-progress", f"s3://{synced_bucket}", str(down))
    assert len(result.stdout.splitlines()) == len(files) + 1
    got = {path.relative_to(down).as_posix(): path for path in down.rglob("*") if path.is_file()}
    assert sorted(got) == sorted([*files, "big/two hundred.bin"])
    for key, data in files.items():
        assert got[key].read_bytes() == data, key
    assert same_file(got["big/two hundred.bin"], root / "big" / "two hundred.bin")


@pytest.mark.slow
def test_second_sync_up_copies_nothing(
    relay_server: RelayProcess, big_tree: tuple[Path, dict[str, bytes]], synced_bucket: str
) -> None:
    root, _ = big_tree
    result = aws(relay_server, "s3", "sync", "--no-progress", str(root), f"s3://{synced_bucket}")
    assert result.stdout == ""


@pytest.mark.slow
def test_ls_recursive_lists_the_tree(
    relay_server: RelayProcess, big_tree: tuple[Path, dict[str, bytes]], synced_bucket: str
) -> None:
    _, files = big_tree
    result = aws(relay_server, "s3", "ls", "--recursive", f"s3://{synced_bucket}")
    listed = {}
    for line in result.stdout.splitlines():
        _date, _time, size, key = line.split(maxsplit=3)
        listed[key] = int(size)
    expected = {key: len(data) for key, data in files.items()}
    expected["big/two hundred.bin"] = BIG_FILE_BYTES
    assert listed == expected
    assert [line.split(maxsplit=3)[3] for line in result.stdout.splitlines()] == expected_keys(
        files
    )


@pytest.mark.slow
def test_ls_shows_one_level(
    relay_server: RelayProcess, big_tree: tuple[Path, dict[str, bytes]], synced_bucket: str
) -> None:
    _, files = big_tree
    result = aws(relay_server, "s3", "ls", f"s3://{synced_bucket}/")
    directories, objects = set(), {}
    for line in result.stdout.splitlines():
        if line.strip().startswith("PRE "):
            directories.add(line.strip().removeprefix("PRE "))
        else:
            _date, _time, size, key = line.split(maxsplit=3)
            objects[key] = int(size)
    keys = [*files, "big/two hundred.bin"]
    assert directories == {key.split("/")[0] + "/" for key in keys if "/" in key}
    assert objects == {key: len(files[key]) for key in keys if "/" not in key}

    inner = aws(relay_server, "s3", "ls", f"s3://{synced_bucket}/dir1/").stdout
    inner_dirs = {
        line.strip().removeprefix("PRE ") for line in inner.splitlines() if "PRE " in line
    }
    assert inner_dirs == {
        key.split("/")[1] + "/" for key in keys if key.startswith("dir1/") and key.count("/") > 1
    }


@pytest.mark.slow
def test_s3api_list_objects_v2_paginates(
    relay_server: RelayProcess, big_tree: tuple[Path, dict[str, bytes]], synced_bucket: str
) -> None:
    _, files = big_tree
    keys: list[str] = []
    token: str | None = None
    calls = 0
    while True:
        extra = ["--starting-token", token] if token else []
        page = s3api(
            relay_server,
            "list-objects-v2",
            "--bucket",
            synced_bucket,
            "--max-items",
            "300",
            "--page-size",
            "70",
            *extra,
        )
        calls += 1
        keys += [item["Key"] for item in page["Contents"]]
        token = page.get("NextToken")
        if token is None:
            break
        assert len(page["Contents"]) == 300
    assert keys == expected_keys(files)
    assert calls == -(-(len(files) + 1) // 300)

    top = s3api(relay_server, "list-objects-v2", "--bucket", synced_bucket, "--delimiter", "/")
    all_keys = [*files, "big/two hundred.bin"]
    assert [item["Prefix"] for item in top["CommonPrefixes"]] == sorted(
        {key.split("/")[0] + "/" for key in all_keys if "/" in key}, key=lambda p: p.encode()
    )
    assert [item["Key"] for item in top.get("Contents", [])] == sorted(
        (key for key in all_keys if "/" not in key), key=lambda k: k.encode()
    )


@pytest.mark.slow
def test_s3api_head_object_of_the_big_file(
    relay_server: RelayProcess, big_tree: tuple[Path, dict[str, bytes]], synced_bucket: str
) -> None:
    root, _ = big_tree
    head = s3api(
        relay_server, "head-object", "--bucket", synced_bucket, "--key", "big/two hundred.bin"
    )
    assert head["ContentLength"] == BIG_FILE_BYTES
    assert head["ETag"] == multipart_etag(root / "big" / "two hundred.bin", CLI_PART_BYTES)


# -- rm, bucket location, multipart uploads ----------------------------------------------


def test_rm_recursive_empties_the_bucket(
    relay_server: RelayProcess, tmp_path: Path, bucket_name: str
) -> None:
    files = make_tree(tmp_path / "tree", 60, seed=7)
    aws(relay_server, "s3", "mb", f"s3://{bucket_name}")
    aws(relay_server, "s3", "sync", "--no-progress", str(tmp_path / "tree"), f"s3://{bucket_name}")

    result = aws(relay_server, "s3", "rm", "--recursive", f"s3://{bucket_name}/dir1/")
    removed = {
        line.removeprefix(f"delete: s3://{bucket_name}/") for line in result.stdout.splitlines()
    }
    assert removed == {key for key in files if key.startswith("dir1/")}
    left = aws(relay_server, "s3", "ls", "--recursive", f"s3://{bucket_name}").stdout
    assert {line.split(maxsplit=3)[3] for line in left.splitlines()} >= {
        key for key in files if not key.startswith("dir1/")
    }

    aws(relay_server, "s3", "rm", "--recursive", f"s3://{bucket_name}")
    assert aws(relay_server, "s3", "ls", "--recursive", f"s3://{bucket_name}").stdout == ""
    listing = s3api(relay_server, "list-objects-v2", "--bucket", bucket_name)
    assert "Contents" not in listing
    aws(relay_server, "s3", "rb", f"s3://{bucket_name}")
    buckets = s3api(relay_server, "list-buckets")["Buckets"]
    assert bucket_name not in [item["Name"] for item in buckets]


def test_s3api_get_bucket_location(relay_server: RelayProcess, bucket_name: str) -> None:
    s3api(relay_server, "create-bucket", "--bucket", bucket_name)
    location = s3api(relay_server, "get-bucket-location", "--bucket", bucket_name)
    # us-east-1 is the one region S3 reports as an empty (null) constraint.
    assert location == {"LocationConstraint": None}


def test_s3api_list_multipart_uploads(relay_server: RelayProcess, bucket_name: str) -> None:
    s3api(relay_server, "create-bucket", "--bucket", bucket_name)
    assert "Uploads" not in (
        s3api(relay_server, "list-multipart-uploads", "--bucket", bucket_name) or {}
    )
    created = [
        s3api(relay_server, "create-multipart-upload", "--bucket", bucket_name, "--key", key)
        for key in ("b/x", "a/y")
    ]
    listed = s3api(relay_server, "list-multipart-uploads", "--bucket", bucket_name)["Uploads"]
    assert [(item["Key"], item["UploadId"]) for item in listed] == [
        (created[1]["Key"], created[1]["UploadId"]),
        (created[0]["Key"], created[0]["UploadId"]),
    ]
    s3api(
        relay_server,
        "abort-multipart-upload",
        "--bucket",
        bucket_name,
        "--key",
        "a/y",
        "--upload-id",
        created[1]["UploadId"],
    )
    listed = s3api(relay_server, "list-multipart-uploads", "--bucket", bucket_name)["Uploads"]
    assert [item["UploadId"] for item in listed] == [created[0]["UploadId"]]


def test_sync_with_public_read_then_anonymous_get(
    relay_server: RelayProcess, tmp_path: Path, bucket_name: str
) -> None:
    aws(relay_server, "s3", "mb", f"s3://{bucket_name}")
    tree = tmp_path / "site"
    (tree / "img").mkdir(parents=True)
    (tree / "index.html").write_bytes(b"<p>hi</p>")
    (tree / "img" / "dot.png").write_bytes(b"\x89PNG fake")
    aws(relay_server, "s3", "sync", "--no-progress", "--acl", "public-read", str(tree),
        f"s3://{bucket_name}")  # fmt: skip
    for name in ("index.html", "img/dot.png"):
        with urllib.request.urlopen(f"{relay_server.endpoint}/{bucket_name}/{name}") as answer:
            assert answer.read() == (tree / name).read_bytes()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{relay_server.endpoint}/{bucket_name}?list-type=2")
    refused.value.close()
    assert refused.value.code == 403
