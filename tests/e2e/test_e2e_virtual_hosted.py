"""Virtual-hosted clients against a real relay with ``RELAY_DOMAINS`` set, each in its
default addressing: DuckDB's httpfs (vhost), the AWS SDK for JavaScript v3, and boto3
told to use virtual-hosted addressing (its presigned URLs in both styles and both
signature versions).

``BUCKET.s3.relay.test`` must resolve to relay: relay and every client run inside a
network namespace of this module's own whose hosts file names each bucket
(``tests/e2e/netns.py``). A client that ignored the style, or a relay that ignored the
Host, would fail here: relay would take the first key segment for the bucket.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import RelayProcess, client_env, start_relay, stop_relay
from hostnames_netns import Namespace, network_namespace

DOMAIN = "s3.relay.test"
DUCK_BUCKET = "duck-tables"
JS_BUCKET = "js-sdk-v3"
BOTO_BUCKET = "boto-virtual"
CLIENTS = Path(__file__).parent / "clients"
REPO = Path(__file__).resolve().parents[2]
JS_MODULES = REPO / ".cache" / "aws-sdk-js"
CLIENT_TIMEOUT_SECONDS = 180


@pytest.fixture(scope="module")
def namespace() -> Iterator[Namespace]:
    names = [DOMAIN, *(f"{b}.{DOMAIN}" for b in (DUCK_BUCKET, JS_BUCKET, BOTO_BUCKET))]
    with network_namespace(names) as made:
        yield made


@pytest.fixture(scope="module")
def relay(namespace: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    started = start_relay(
        tmp_path_factory.mktemp("relay-vhost"),
        environ={"RELAY_DOMAINS": DOMAIN},
        prefix=namespace.prefix,
    )
    try:
        yield started
    finally:
        code = stop_relay(started.process)
    log = started.log()
    assert code == 0, f"relay exited with {code}:\n{log[-5000:]}"
    assert "Traceback" not in log, log[-5000:]


def run_client(
    namespace: Namespace, relay: RelayProcess, command: list[str], tmp_path: Path
) -> Any:
    """Run a client inside the namespace; its one line of JSON output."""
    result = subprocess.run(
        [*namespace.prefix, *command],
        env=client_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (
        f"{command[0]} failed:\n{result.stdout}\n{result.stderr}\nrelay:\n{relay.log()[-3000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def endpoint_host(relay: RelayProcess) -> str:
    return f"{DOMAIN}:{relay.port}"


def test_boto3_virtual_hosted_and_presigned_urls_in_both_styles(
    namespace: Namespace, relay: RelayProcess, tmp_path: Path
) -> None:
    out = run_client(
        namespace,
        relay,
        [sys.executable, str(CLIENTS / "boto3_virtual.py"), f"http://{endpoint_host(relay)}",
         BOTO_BUCKET],
        tmp_path,
    )  # fmt: skip
    assert out["get"] == "virtually hosted"
    for name, seen in out["presigned"].items():
        style, version = name.split("-")
        expected_host = f"{BOTO_BUCKET}.{DOMAIN}" if style == "virtual" else DOMAIN
        assert seen["host"] == f"{expected_host}:{relay.port}", name
        assert seen["sigv2"] == (version == "default"), name
        assert seen["put"] == 200, name
        assert seen["get"] == [200, name], name


def test_duckdb_httpfs_reads_and_writes_in_its_default_vhost_style(
    namespace: Namespace, relay: RelayProcess, tmp_path: Path
) -> None:
    pytest.importorskip("duckdb", reason="UNAVAILABLE: duckdb (the test extra) is not installed")
    pytest.importorskip(
        "duckdb_extension_httpfs",
        reason="UNAVAILABLE: duckdb-extension-httpfs (the test extra) is not installed",
    )
    create = (
        "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1'"
        ").create_bucket(Bucket=sys.argv[2]); print('{}')"
    )
    run_client(
        namespace, relay,
        [sys.executable, "-c", create, f"http://{endpoint_host(relay)}", DUCK_BUCKET], tmp_path,
    )  # fmt: skip
    out = run_client(
        namespace,
        relay,
        [sys.executable, str(CLIENTS / "duckdb_httpfs.py"), endpoint_host(relay), DUCK_BUCKET],
        tmp_path,
    )
    assert out["url_style"] == "vhost"  # DuckDB's default, not set by the test
    assert out["parquet"] == [5000, sum(range(5000)), "row 999"]
    assert out["csv"] == [100, sum(n * n for n in range(100))]
    assert out["files"] == [
        f"s3://{DUCK_BUCKET}/tables/numbers.parquet",
        f"s3://{DUCK_BUCKET}/tables/squares.csv",
    ]
    requests = [line for line in relay.log().splitlines() if DUCK_BUCKET in line]
    assert requests, "relay logged no request for DuckDB's bucket"


def test_aws_sdk_js_v3_with_its_default_addressing(
    namespace: Namespace, relay: RelayProcess, tmp_path: Path
) -> None:
    if shutil.which("node") is None:
        pytest.skip("UNAVAILABLE: node is not installed (scripts/_system.sh installs it)")
    if not (JS_MODULES / "node_modules" / "@aws-sdk" / "client-s3").is_dir():
        pytest.skip(
            f"UNAVAILABLE: @aws-sdk/client-s3 is not in {JS_MODULES} (scripts/test installs it "
            "from npm)"
        )
    out = run_client(
        namespace,
        relay,
        ["node", str(CLIENTS / "aws_sdk_js_v3.cjs"), str(JS_MODULES),
         f"http://{endpoint_host(relay)}", JS_BUCKET],
        tmp_path,
    )  # fmt: skip
    assert out["hosts"] == [f"{JS_BUCKET}.{DOMAIN}"]  # virtual-hosted, the SDK's own choice
    assert out["body"] == "hello from js"
    assert out["contentType"] == "text/plain"
    assert out["keys"] == ["hello/wörld.txt"]
    assert out["presignedUrl"].startswith(f"http://{JS_BUCKET}.{DOMAIN}:{relay.port}/")
    assert "X-Amz-Signature=" in out["presignedUrl"]
    assert (out["presignedStatus"], out["presignedBody"]) == (200, "hello from js")
