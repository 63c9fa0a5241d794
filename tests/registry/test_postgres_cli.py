"""``relay log`` on a PostgreSQL registry: the buckets are in the database, so no data
directory is needed, and the URL's password is never printed."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import trio
from pg import PostgresServer

from relay.ipld.cid import CID
from relay.registry.config import RegistryConfig
from relay.registry.postgres import open_postgres_registry

S3_STORE = {
    "RELAY_STORE": "s3",
    "RELAY_S3_ENDPOINT": "http://127.0.0.1:9",  # never contacted: the log is the registry's
    "RELAY_S3_BUCKET": "blobs",
    "RELAY_S3_ACCESS_KEY_ID": "AKID",
    "RELAY_S3_SECRET_ACCESS_KEY": "secret",
}


async def test_relay_log_reads_a_postgres_registry_without_a_data_directory(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.new_database()
    empty_root = CID.dag_cbor_sha256(hashlib.sha256(b"empty").digest())
    async with open_postgres_registry(RegistryConfig(url=url)) as registry:
        await registry.create_bucket("shared", "alice", empty_root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    result = await trio.run_process(
        [sys.executable, "-m", "relay", "log", "shared", "--registry-url", url],
        capture_stdout=True,
        capture_stderr=True,
        env={**env, **S3_STORE},
        cwd=tmp_path,  # no relay-data here
        check=False,
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    assert str(empty_root) in stdout
    assert postgres_server.password not in stdout + stderr
