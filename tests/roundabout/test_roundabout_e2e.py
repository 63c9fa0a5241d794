"""Roundabout end to end: real processes, a real upstream, a client with no S3 knowledge.

An "upstream" ``relay serve`` holds an object that boto3 uploaded. A second ``relay serve
--roundabout`` knows the upstream bucket's keys (``[[roundabout.buckets]]``) and holds a
claim for the object's content pointing at its plain upstream URL. The client asks
roundabout for the CID, gets a 302 to a URL presigned for the upstream, and fetches it
with urllib: the bytes hash to the CID. A presign that has expired is refused upstream.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import boto3
import pytest
import trio
from botocore.config import Config as BotoConfig

from relay.ipld.cid import CID
from relay.registry import open_sqlite_registry
from relay.registry.base import Claim

ACCESS_KEY, SECRET_KEY = "upstream-key", "upstream-secret"
STARTUP_TIMEOUT_SECONDS = 30.0  # a cold start imports trio, h11 and opens SQLite: ~1 s
BUCKET, KEY = "upstream", "dir/the object ü+.bin"
DATA = os.urandom(200_000)


@dataclass(frozen=True)
class Relay:
    process: subprocess.Popen[bytes]
    log_path: Path
    s3: str
    roundabout: str | None


def start_relay(base: Path, *extra: str) -> Relay:
    base.mkdir(parents=True, exist_ok=True)
    log_path = base / "relay.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "AWS_"))}
    env.update(RELAY_ACCESS_KEY_ID=ACCESS_KEY, RELAY_SECRET_ACCESS_KEY=SECRET_KEY)
    command = [
        sys.executable,
        "-m",
        "relay",
        "serve",
        "--workers",
        "1",
        "--data",
        str(base / "data"),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, "--listen", "127.0.0.1:0", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base,
        )  # fmt: skip
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        s3 = re.search(r"serving S3 at (http://\S+)", text)
        roundabout = re.search(r"serving roundabout at (http://\S+)", text)
        if s3 and (roundabout or "--roundabout" not in extra):
            return Relay(process, log_path, s3.group(1), roundabout and roundabout.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"relay did not start:\n{log_path.read_text()}")


def stop_relay(relay: Relay) -> None:
    relay.process.send_signal(signal.SIGTERM)
    try:
        relay.process.wait(15)
    except subprocess.TimeoutExpired:
        relay.process.kill()
        relay.process.wait()
    log = relay.log_path.read_text(errors="replace")
    assert relay.process.returncode == 0, log
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    relay = start_relay(tmp_path_factory.mktemp("upstream"))
    try:
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=relay.s3,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=DATA)
        yield relay
    finally:
        stop_relay(relay)


@pytest.fixture(scope="module")
def roundabout(upstream: Relay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    base = tmp_path_factory.mktemp("roundabout")
    config = base / "relay.toml"
    config.write_text(
        f'[[roundabout.buckets]]\nendpoint = "{upstream.s3}"\nbucket = "{BUCKET}"\n'
        f'region = "us-east-1"\naccess_key_id = "{ACCESS_KEY}"\n'
        f'secret_access_key = "{SECRET_KEY}"\nkey_access = true\n'
    )
    claim = Claim(
        CID.raw_sha256(hashlib.sha256(DATA).digest()).multihash,
        f"{upstream.s3}/{BUCKET}/{quote(KEY)}",  # the plain upstream URL: no signature
    )

    async def import_claim() -> None:
        async with open_sqlite_registry(base / "data" / "registry.sqlite") as registry:
            await registry.add_claims([claim])

    trio.run(import_claim)
    relay = start_relay(base, "--config", str(config), "--roundabout", "127.0.0.1:0")
    try:
        yield relay
    finally:
        stop_relay(relay)


def ask(endpoint: str, target: str) -> tuple[int, str | None, bytes]:
    """One request to roundabout, redirects not followed: (status, Location, body)."""
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.getheader("location"), response.read()
    finally:
        connection.close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body


def test_a_cid_redirects_to_upstream_bytes_that_hash_to_it(
    upstream: Relay, roundabout: Relay
) -> None:
    cid = CID.raw_sha256(hashlib.sha256(DATA).digest())
    assert roundabout.roundabout is not None
    status, location, body = ask(roundabout.roundabout, f"/{cid}")
    assert (status, body) == (302, b"")
    assert location is not None
    assert location.startswith(f"{upstream.s3}/{BUCKET}/{quote(KEY)}?X-Amz-Algorithm=")
    assert "X-Amz-Expires=259200" in location
    fetched = fetch(location)
    assert CID.raw_sha256(hashlib.sha256(fetched).digest()) == cid


def test_the_plain_upstream_url_itself_is_refused(upstream: Relay) -> None:
    # control: the bytes are not public, so the redirect's signature is what opened them
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(f"{upstream.s3}/{BUCKET}/{quote(KEY)}")
    refused.value.close()
    assert refused.value.code == 403


def test_key_route_redirects_to_the_object(roundabout: Relay) -> None:
    assert roundabout.roundabout is not None
    status, location, _ = ask(roundabout.roundabout, f"/key/{quote(KEY)}?bucket={BUCKET}")
    assert status == 302
    assert location is not None
    assert fetch(location) == DATA


def test_an_unknown_cid_is_404_and_a_bad_one_400(roundabout: Relay) -> None:
    assert roundabout.roundabout is not None
    other = CID.raw_sha256(hashlib.sha256(b"nobody claims this").digest())
    assert ask(roundabout.roundabout, f"/{other}")[0] == 404
    assert ask(roundabout.roundabout, "/not-a-cid")[0] == 400


def test_an_expired_presign_is_refused_upstream(roundabout: Relay) -> None:
    cid = CID.raw_sha256(hashlib.sha256(DATA).digest())
    assert roundabout.roundabout is not None
    status, location, _ = ask(roundabout.roundabout, f"/{cid}?expires=1")
    assert status == 302
    assert location is not None
    time.sleep(2.1)  # X-Amz-Date has whole seconds: 2 s is past the 1 s window for sure
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(location)
    with refused.value:
        assert refused.value.code == 403
        assert b"Request has expired" in refused.value.read()
