"""s3cmd against a real relay: mb, put, get, ls, sync both ways, del.

s3cmd signs with SigV4 here (``signature_v2 = False``), addresses buckets path-style
(``host_bucket`` without ``%(bucket)s``) and reads only the generated config file.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY, VENV_BIN, RelayProcess, anonymous_get

S3CMD_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def s3cmd_config(relay_server: RelayProcess) -> Path:
    path = relay_server.home / "s3cmd.cfg"
    address = f"{relay_server.host}:{relay_server.port}"
    path.write_text(
        "[default]\n"
        f"access_key = {ACCESS_KEY}\n"
        f"secret_key = {SECRET_KEY}\n"
        f"host_base = {address}\n"
        f"host_bucket = {address}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "check_ssl_certificate = False\n"
        "progress_meter = False\n"
        "multipart_chunk_size_mb = 5\n"
    )
    return path


def s3cmd(
    relay: RelayProcess, config: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(VENV_BIN / "s3cmd"), "--config", str(config), *args],
        env=relay.client_env,
        capture_output=True,
        text=True,
        timeout=S3CMD_TIMEOUT_SECONDS,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"s3cmd {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def make_tree(root: Path, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    names = [
        "top.txt",
        "a/one.bin",
        "a/two.bin",
        "a/deeper/three.bin",
        "b/with space.txt",
        "b/plus+name.txt",
        "ünïcødé/ключ.txt",
        "empty.bin",
    ]
    files = {}
    for name in names:
        data = b"" if name == "empty.bin" else rng.randbytes(rng.randrange(1, 20_000))
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        files[name] = data
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def ls_keys(output: str, bucket: str) -> dict[str, int]:
    """``s3cmd ls``: 'DATE TIME SIZE s3://bucket/key' (or 'DIR s3://bucket/prefix/')."""
    listed = {}
    for line in output.splitlines():
        fields = line.split(maxsplit=3)
        if fields[0] == "DIR":
            listed[line.split(f"s3://{bucket}/", 1)[1]] = -1
        else:
            listed[fields[3].removeprefix(f"s3://{bucket}/")] = int(fields[2])
    return listed


def test_mb_put_get_ls_del(
    relay_server: RelayProcess, s3cmd_config: Path, tmp_path: Path, bucket_name: str
) -> None:
    s3cmd(relay_server, s3cmd_config, "mb", f"s3://{bucket_name}")
    buckets = s3cmd(relay_server, s3cmd_config, "ls").stdout
    assert f"s3://{bucket_name}" in buckets.split()

    small = tmp_path / "small.txt"
    small.write_bytes(b"s3cmd says hello\n")
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(12 * (1 << 20) + 5))  # multipart at 5 MiB
    s3cmd(relay_server, s3cmd_config, "put", str(small), f"s3://{bucket_name}/docs/small.txt")
    s3cmd(relay_server, s3cmd_config, "put", str(big), f"s3://{bucket_name}/big.bin")

    s3cmd(
        relay_server, s3cmd_config, "get", f"s3://{bucket_name}/docs/small.txt", str(tmp_path / "s")
    )
    s3cmd(relay_server, s3cmd_config, "get", f"s3://{bucket_name}/big.bin", str(tmp_path / "b"))
    assert (tmp_path / "s").read_bytes() == small.read_bytes()
    assert (tmp_path / "b").read_bytes() == big.read_bytes()

    top = ls_keys(
        s3cmd(relay_server, s3cmd_config, "ls", f"s3://{bucket_name}").stdout, bucket_name
    )
    assert top == {"docs/": -1, "big.bin": big.stat().st_size}
    everything = s3cmd(relay_server, s3cmd_config, "ls", "--recursive", f"s3://{bucket_name}")
    assert ls_keys(everything.stdout, bucket_name) == {
        "big.bin": big.stat().st_size,
        "docs/small.txt": small.stat().st_size,
    }

    info = s3cmd(relay_server, s3cmd_config, "info", f"s3://{bucket_name}/docs/small.txt").stdout
    assert hashlib.md5(small.read_bytes()).hexdigest() in info

    s3cmd(relay_server, s3cmd_config, "del", f"s3://{bucket_name}/docs/small.txt")
    after = s3cmd(relay_server, s3cmd_config, "ls", "--recursive", f"s3://{bucket_name}")
    assert ls_keys(after.stdout, bucket_name) == {"big.bin": big.stat().st_size}
    missing = s3cmd(
        relay_server,
        s3cmd_config,
        "get",
        f"s3://{bucket_name}/docs/small.txt",
        str(tmp_path / "gone"),
        check=False,
    )
    assert missing.returncode != 0
    assert not (tmp_path / "gone").exists()


def test_sync_both_ways(
    relay_server: RelayProcess, s3cmd_config: Path, tmp_path: Path, bucket_name: str
) -> None:
    source = tmp_path / "source"
    files = make_tree(source, seed=5)
    s3cmd(relay_server, s3cmd_config, "mb", f"s3://{bucket_name}")
    s3cmd(relay_server, s3cmd_config, "sync", f"{source}/", f"s3://{bucket_name}/tree/")
    listed = s3cmd(relay_server, s3cmd_config, "ls", "--recursive", f"s3://{bucket_name}").stdout
    assert ls_keys(listed, bucket_name) == {f"tree/{key}": len(data) for key, data in files.items()}

    down = tmp_path / "down"
    down.mkdir()
    s3cmd(relay_server, s3cmd_config, "sync", f"s3://{bucket_name}/tree/", f"{down}/")
    assert read_tree(down) == files

    # A changed file and a deleted one travel with the next sync (--delete-removed).
    (source / "a" / "one.bin").write_bytes(b"changed")
    (source / "top.txt").unlink()
    again = s3cmd(
        relay_server,
        s3cmd_config,
        "sync",
        "--delete-removed",
        f"{source}/",
        f"s3://{bucket_name}/tree/",
    )
    assert "a/one.bin" in again.stdout
    s3cmd(
        relay_server,
        s3cmd_config,
        "sync",
        "--delete-removed",
        f"s3://{bucket_name}/tree/",
        f"{down}/",
    )
    expected = dict(files)
    expected["a/one.bin"] = b"changed"
    del expected["top.txt"]
    assert read_tree(down) == expected

    s3cmd(relay_server, s3cmd_config, "del", "--recursive", "--force", f"s3://{bucket_name}/tree/")
    assert (
        s3cmd(relay_server, s3cmd_config, "ls", "--recursive", f"s3://{bucket_name}").stdout == ""
    )
    s3cmd(relay_server, s3cmd_config, "rb", f"s3://{bucket_name}")


def test_put_public_then_anonymous_get(
    relay_server: RelayProcess, s3cmd_config: Path, tmp_path: Path, bucket_name: str
) -> None:
    s3cmd(relay_server, s3cmd_config, "mb", f"s3://{bucket_name}")
    page = tmp_path / "page.html"
    page.write_bytes(b"<h1>public</h1>\n")
    s3cmd(relay_server, s3cmd_config, "put", str(page), f"s3://{bucket_name}/page.html")
    assert anonymous_get(relay_server, f"/{bucket_name}/page.html")[0] == 403
    s3cmd(relay_server, s3cmd_config, "put", "-P", str(page), f"s3://{bucket_name}/public.html")
    assert anonymous_get(relay_server, f"/{bucket_name}/public.html") == (200, page.read_bytes())
    assert anonymous_get(relay_server, f"/{bucket_name}/page.html")[0] == 403
    s3cmd(relay_server, s3cmd_config, "setacl", "--acl-private", f"s3://{bucket_name}/public.html")
    assert anonymous_get(relay_server, f"/{bucket_name}/public.html")[0] == 403
