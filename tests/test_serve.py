"""`relay serve` as an operator runs it: first start, the printed key, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def start(data_dir: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "AWS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--data", str(data_dir),
         "--listen", "127.0.0.1:0", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    lines = [process.stdout.readline()]
    match = re.search(r"serving S3 at (http://\S+)", lines[0])
    assert match, lines
    return process, match.group(1), lines


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None
    output = process.stdout.read()  # through the same buffer the first line came from
    process.stdout.close()
    process.wait(timeout=30)
    return output


def test_first_start_generates_and_prints_a_key_then_sigterm_stops_cleanly(
    tmp_path: Path,
) -> None:
    process, endpoint, lines = start(tmp_path / "data")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(endpoint + "/", timeout=10)
        refused.value.close()
        assert refused.value.code == 403  # anonymous requests are refused
        assert refused.value.headers["x-amz-request-id"]
    finally:
        output = "".join(lines) + stop(process)
    assert process.returncode == 0, output
    assert "AWS_SECRET_ACCESS_KEY=" in output
    assert "relay: stopped" in output
    secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", output)
    assert secret is not None
    assert secret.group(1) in (tmp_path / "data" / "credentials.toml").read_text()

    again, _, lines = start(tmp_path / "data")
    output = "".join(lines) + stop(again)
    assert again.returncode == 0, output
    assert secret.group(1) not in output, "the secret is printed on the first start only"
