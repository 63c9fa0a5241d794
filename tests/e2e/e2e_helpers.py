"""Starting a real ``relay serve`` process and pointing real S3 clients at it.

relay runs as ``python -m relay serve --listen 127.0.0.1:0`` on a fresh data directory,
credentials ``test``/``test``, region us-east-1, default chunk size: exactly as a user
starts it, in its own process, so clients and server use both cores.

No client ever reads ``~/.aws`` or ``~/.s3cfg``: the aws CLI and boto3 get config and
credentials files under a temporary directory, and s3cmd a generated ``--config``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"
VENV_BIN = Path(sys.executable).parent
# A cold start imports trio, h11 and the codecs and opens SQLite: a second or two.
STARTUP_TIMEOUT_SECONDS = 30.0
# Nothing is in flight when a module's tests are done: a graceful stop takes moments.
STOP_TIMEOUT_SECONDS = 15.0

_ENDPOINT_LINE = re.compile(r"serving S3 at (http://\S+)")


class RelayStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class RelayProcess:
    process: subprocess.Popen[bytes]
    endpoint: str
    host: str
    port: int
    data_dir: Path
    log_path: Path
    client_env: dict[str, str]
    home: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def client_env(home: Path) -> dict[str, str]:
    """The environment every client runs in: nothing from ~/.aws, ever."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "aws-config"
    credentials = home / "aws-credentials"
    config.write_text(f"[default]\nregion = {REGION}\n")
    credentials.write_text(
        f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "RELAY_", "BOTO_"))
    }
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        HOME=str(home),
    )
    return env


# How boto3 sends checksums: by default over plain http (a CRC32 header), the way it does
# over TLS (an aws-chunked body with a CRC32 trailer), and only when required.
CHECKSUM_MODES = ("when_supported", "trailer", "when_required")


def start_relay(
    base: Path,
    *,
    config: Path | None = None,
    args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
    workers: int = 1,
) -> RelayProcess:
    """``relay serve`` on a free loopback port with a fresh data dir under ``base``.

    Credentials are test/test from the environment, or only those in ``config``; ``args``
    go to ``relay serve`` (``--admin``, ``--log-format``…); ``environ`` adds ``RELAY_*``
    settings; ``prefix`` runs it under another command (``ip netns exec NS``). One process
    (``--workers 1``) unless ``workers`` asks for a supervisor and that many workers."""
    data_dir = base / "data"
    log_path = base / "relay.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAY_")}
    env.update(RELAY_REGION=REGION, PYTHONUNBUFFERED="1", **(environ or {}))
    command = [sys.executable, "-m", "relay", "serve", "--data", str(data_dir)]
    if config is None:
        env.update(RELAY_ACCESS_KEY_ID=ACCESS_KEY, RELAY_SECRET_ACCESS_KEY=SECRET_KEY)
    else:
        command += ["--config", str(config)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*prefix, *command, "--listen", "127.0.0.1:0", "--workers", str(workers), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=base,
        )
    try:
        endpoint = _wait_for_endpoint(process, log_path)
    except BaseException:
        stop_relay(process)
        raise
    host, _, port = endpoint.removeprefix("http://").rpartition(":")
    return RelayProcess(
        process=process,
        endpoint=endpoint,
        host=host,
        port=int(port),
        data_dir=data_dir,
        log_path=log_path,
        client_env=client_env(base / "home"),
        home=base / "home",
    )


def _wait_for_endpoint(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        match = _ENDPOINT_LINE.search(log_path.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise RelayStartError(
                f"relay exited with {process.returncode}:\n{log_path.read_text()}"
            )
        time.sleep(0.05)
    raise RelayStartError(f"relay did not announce its endpoint:\n{log_path.read_text()}")


def stop_relay(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (relay's graceful stop), SIGKILL if that takes too long; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def boto_client(relay: RelayProcess, *, trailer_checksums: bool = False, **config: Any) -> Any:
    """A boto3 S3 client for relay. ``trailer_checksums`` makes botocore send its upload
    checksums the way it does over TLS (aws-chunked body, STREAMING-UNSIGNED-PAYLOAD-TRAILER,
    ``x-amz-checksum-*`` as a trailer); over plain http it would send them as headers."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=relay.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",  # presigned URLs too (boto3 would presign with SigV2)
            retries={"max_attempts": 1, "mode": "standard"},
            **config,
        ),
    )
    if trailer_checksums:
        client.meta.events.register("before-call.s3", _checksum_in_trailer)
    return client


def _checksum_in_trailer(params: dict[str, Any], **_: Any) -> None:
    """botocore's own choice for TLS (botocore.httpchecksum: location "trailer"), made here
    before the checksum is applied and the request signed."""
    algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict) and algorithm.get("in") == "header":
        algorithm["in"] = "trailer"


@contextmanager
def serving_clients(relay: RelayProcess) -> Iterator[RelayProcess]:
    """``relay`` for in-process clients too (boto3 gets the AWS_* settings of its client
    environment, so it never reads ~/.aws), then stopped. Failures a client saw are the
    tests' to assert; this catches what they could not: an unclean stop, or an error relay
    logged with a traceback (an InternalError)."""
    saved = {name: os.environ.get(name) for name in relay.client_env if name.startswith("AWS_")}
    os.environ.update({name: relay.client_env[name] for name in saved})
    try:
        yield relay
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        code = stop_relay(relay.process)
    log = relay.log()
    assert code == 0, f"relay exited with {code}:\n{log[-5000:]}"
    assert "Traceback" not in log, log[-5000:]


def anonymous_get(relay: RelayProcess, path: str) -> tuple[int, bytes]:
    """A GET with no signature and no SDK at all (what a browser or curl does)."""
    try:
        with urllib.request.urlopen(relay.endpoint + path, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()
