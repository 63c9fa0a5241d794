"""relay serving S3 on top of the ``s3`` blob store, whose upstream is moto: boto3 in
front, moto behind, two real processes besides the test."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    RelayProcess,
    boto_client,
    client_env,
    stop_relay,
)
from e2e_helpers import _wait_for_endpoint as wait_for_endpoint
from moto_upstream import MotoServer, moto_or_skip, stop_moto

from relay.ipld.base import b58encode

CHUNK = 1 << 20
BODY = os.urandom(2 * CHUNK + 12345)  # three chunks
_BLOB_KEY = re.compile(r"(z[1-9A-HJ-NP-Za-km-z]+)/\1\.blob")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = moto_or_skip(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server.process)


def relay_env(moto: MotoServer, upstream_bucket: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAY_")}
    env.update(
        RELAY_ACCESS_KEY_ID=ACCESS_KEY,
        RELAY_SECRET_ACCESS_KEY=SECRET_KEY,
        RELAY_REGION=REGION,
        RELAY_S3_ACCESS_KEY_ID=moto.access_key,
        RELAY_S3_SECRET_ACCESS_KEY=moto.secret_key,
        PYTHONUNBUFFERED="1",
    )
    return env


def start_relay_on(moto: MotoServer, upstream_bucket: str, base: Path) -> RelayProcess:
    """``relay serve`` with ``[store] kind = "s3"`` from a config file, the upstream's
    credentials from the environment (as a deployment would keep them)."""
    data_dir = base / "data"
    config = base / "relay.toml"
    config.write_text(
        f'[store]\nkind = "s3"\n\n[store.s3]\nendpoint = "{moto.endpoint}"\n'
        f'region = "{REGION}"\nbucket = "{upstream_bucket}"\nprefix = ""\n'
    )
    log_path = base / "relay.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "relay", "serve", "--config", str(config)),
                *("--data", str(data_dir), "--listen", "127.0.0.1:0", "--workers", "1"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=relay_env(moto, upstream_bucket),
            cwd=base,
        )
    try:
        endpoint = wait_for_endpoint(process, log_path)
    except BaseException:
        stop_relay(process)
        raise
    host, _, port = endpoint.removeprefix("http://").rpartition(":")
    return RelayProcess(
        process, endpoint, host, int(port), data_dir, log_path, client_env(base / "home"), base
    )


def test_objects_put_through_relay_land_upstream_as_claimed_blobs(
    moto: MotoServer, tmp_path: Path
) -> None:
    upstream_bucket = moto.new_bucket("relay-blobs")
    relay = start_relay_on(moto, upstream_bucket, tmp_path)
    try:
        client = boto_client(relay)
        client.create_bucket(Bucket="photos")
        client.put_object(Bucket="photos", Key="big.bin", Body=BODY)
        got = client.get_object(Bucket="photos", Key="big.bin")["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(BODY).digest()
        ranged = client.get_object(Bucket="photos", Key="big.bin", Range="bytes=1048000-1049000")
        assert ranged["Body"].read() == BODY[1048000:1049001]
    finally:
        code = stop_relay(relay.process)
    assert code == 0, relay.log()[-3000:]
    assert "Traceback" not in relay.log(), relay.log()[-3000:]

    keys = [
        item["Key"] for item in moto.client().list_objects_v2(Bucket=upstream_bucket)["Contents"]
    ]
    assert all(_BLOB_KEY.fullmatch(key) for key in keys), keys
    chunk_names = {
        "z" + b58encode(b"\x12\x20" + hashlib.sha256(BODY[i : i + CHUNK]).digest())
        for i in range(0, len(BODY), CHUNK)
    }
    assert {f"{name}/{name}.blob" for name in chunk_names} <= set(keys)

    exported = subprocess.run(
        [sys.executable, "-m", "relay", "claims", "export", "--data", str(relay.data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=relay_env(moto, upstream_bucket),
    ).stdout
    claimed = {url for line in exported.splitlines() for url in json.loads(line)["location"]}
    # Every blob relay wrote upstream is claimed at its path-style URL, and nothing else.
    assert claimed == {f"{moto.endpoint}/{upstream_bucket}/{key}" for key in keys}


ONE_CHUNK = os.urandom(300_000)


def chunk_object_key(data: bytes) -> str:
    name = "z" + b58encode(b"\x12\x20" + hashlib.sha256(data).digest())
    return f"{name}/{name}.blob"


def test_a_blob_deleted_upstream_is_stored_again_by_the_next_put(
    moto: MotoServer, tmp_path: Path
) -> None:
    """The store's known-present set is only a hint: a put of bytes whose object vanished
    upstream uploads them again, and a GET of an object whose first chunk is gone is an
    S3 error, not a 200 cut short."""
    from botocore.exceptions import ClientError

    upstream_bucket = moto.new_bucket("relay-blobs")
    upstream = moto.client()
    relay = start_relay_on(moto, upstream_bucket, tmp_path)
    try:
        client = boto_client(relay)
        client.create_bucket(Bucket="heal")
        client.put_object(Bucket="heal", Key="x1", Body=ONE_CHUNK)
        upstream.delete_object(Bucket=upstream_bucket, Key=chunk_object_key(ONE_CHUNK))
        client.put_object(Bucket="heal", Key="x2", Body=ONE_CHUNK)
        upstream.head_object(Bucket=upstream_bucket, Key=chunk_object_key(ONE_CHUNK))
        for key in ("x1", "x2"):
            assert client.get_object(Bucket="heal", Key=key)["Body"].read() == ONE_CHUNK

        upstream.delete_object(Bucket=upstream_bucket, Key=chunk_object_key(ONE_CHUNK))
        with pytest.raises(ClientError) as caught:
            client.get_object(Bucket="heal", Key="x1")
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert caught.value.response["Error"]["Code"] == "InternalError"
        client.put_object(Bucket="heal", Key="x3", Body=ONE_CHUNK)
        assert client.get_object(Bucket="heal", Key="x1")["Body"].read() == ONE_CHUNK
    finally:
        code = stop_relay(relay.process)
    assert code == 0, relay.log()[-3000:]


@pytest.mark.slow  # its own moto, and relay retries the dead upstream before it answers
def test_a_get_while_the_upstream_is_down_is_a_503(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    (tmp_path / "moto").mkdir()
    (tmp_path / "relay").mkdir()
    own_moto = moto_or_skip(tmp_path / "moto")  # this test stops it
    try:
        upstream_bucket = own_moto.new_bucket("relay-blobs")
        relay = start_relay_on(own_moto, upstream_bucket, tmp_path / "relay")
        try:
            client = boto_client(relay)
            client.create_bucket(Bucket="heal")
            client.put_object(Bucket="heal", Key="x1", Body=ONE_CHUNK)
            # Read once: the manifest is cached, so the GET below needs only the chunk.
            assert client.get_object(Bucket="heal", Key="x1")["Body"].read() == ONE_CHUNK
            stop_moto(own_moto.process)
            with pytest.raises(ClientError) as caught:
                client.get_object(Bucket="heal", Key="x1")
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
            assert own_moto.endpoint not in caught.value.response["Error"]["Message"]
        finally:
            code = stop_relay(relay.process)
        assert code == 0, relay.log()[-3000:]
    finally:
        stop_moto(own_moto.process)
