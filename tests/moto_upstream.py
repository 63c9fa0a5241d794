"""A real S3-compatible upstream for the ``s3`` blob store's tests: moto's standalone server.

``start_moto()`` runs ``moto_server -H 127.0.0.1 -p PORT`` (from ``moto[server]``, in the
test extra) on a free loopback port and waits until it answers; ``stop_moto`` ends it.
moto accepts any credentials unless asked to check them: with
``INITIAL_NO_AUTH_ACTION_COUNT=3`` it answers three requests unauthenticated (creating an
IAM user, its access key and an allow-all policy) and then checks every SigV4 signature
against that key, so a wrong secret gets a real 403 ``SignatureDoesNotMatch``.
Tests that need one call ``moto_or_skip()``, which skips loudly only if the server truly
cannot start (moto missing from the environment).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
# moto imports Flask, werkzeug and its botocore models: a second or two, more when cold.
STARTUP_TIMEOUT_SECONDS = 30.0

_bucket_numbers = itertools.count()


@dataclass(frozen=True)
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str
    port: int
    log_path: Path
    access_key: str
    secret_key: str

    def client(self, secret: str | None = None) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key if secret is None else secret,
            region_name=REGION,
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def store_config(self, bucket: str, **settings: Any) -> Any:
        """An ``S3StoreConfig`` for a bucket here, with the credentials moto checks."""
        from relay.store.s3 import S3StoreConfig

        return S3StoreConfig(
            endpoint=self.endpoint,
            bucket=bucket,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            **settings,
        )

    def new_bucket(self, stem: str = "relay-blobs") -> str:
        name = f"{stem}-{next(_bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return name


def _moto_command() -> list[str] | None:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("moto_server")
    return [found] if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(workdir: Path) -> MotoServer:
    command = _moto_command()
    if command is None:
        raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log_path = workdir / "moto.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    # Verify signatures from the first request on: a wrong secret must be refused.
    env.update(INITIAL_NO_AUTH_ACTION_COUNT="3", TMPDIR=str(workdir))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                stop_moto(process)
                raise RuntimeError(f"moto_server did not start:\n{log_path.read_text()}") from None
            time.sleep(0.05)
    try:
        access_key, secret_key = _create_credentials(endpoint)
    except BaseException:
        stop_moto(process)
        raise
    return MotoServer(process, endpoint, port, log_path, access_key, secret_key)


_ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'


def _create_credentials(endpoint: str) -> tuple[str, str]:
    """The three unauthenticated requests: an IAM user, its key, a policy allowing all."""
    import boto3

    iam = boto3.session.Session().client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        region_name=REGION,
    )
    iam.create_user(UserName="relay")
    key = iam.create_access_key(UserName="relay")["AccessKey"]
    iam.put_user_policy(UserName="relay", PolicyName="all", PolicyDocument=_ALLOW_ALL)
    return key["AccessKeyId"], key["SecretAccessKey"]


def stop_moto(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def moto_or_skip(workdir: Path) -> MotoServer:
    try:
        return start_moto(workdir)
    except FileNotFoundError as exc:
        pytest.skip(f"NO S3 UPSTREAM: {exc}; the s3 blob store is NOT tested")
