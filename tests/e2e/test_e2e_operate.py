"""Operating relay, as an operator sees it: the request log, /metrics and /health, through
a running ``relay serve``."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from e2e_helpers import ACCESS_KEY, SECRET_KEY, RelayProcess, boto_client, start_relay, stop_relay
from moto_upstream import moto_or_skip, stop_moto
from prometheus_client.parser import text_string_to_metric_families

_ADMIN_LINE = re.compile(r"serving /metrics and /health at (http://\S+)")


def admin_endpoint(relay: RelayProcess) -> str:
    match = _ADMIN_LINE.search(relay.log_path.read_text())
    assert match, relay.log_path.read_text()
    return match.group(1)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def log_lines_with(relay: RelayProcess, text: str) -> list[str]:
    """The log lines holding ``text``, waiting briefly: a request's line is written just
    after its answer went out."""
    deadline = time.monotonic() + 5
    while True:
        found = [line for line in relay.log_path.read_text().splitlines() if text in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def scrape(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = fetch(f"{admin}/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_of(samples: dict[Any, float], operation: str, status: int) -> float:
    key = ("relay_requests_total", (("operation", operation), ("status", str(status))))
    return samples.get(key, 0.0)


# A secret unlike anything else a log line holds, so finding it would mean a leak.
OPERATOR_KEY = "OPERATORKEY"
OPERATOR_SECRET = "s3cr3t-of-the-operator-9f2c"


def client_as(relay: RelayProcess, access_key: str, secret: str) -> Any:
    s3 = boto_client(relay)
    s3._request_signer._credentials.access_key = access_key
    s3._request_signer._credentials.secret_key = secret
    return s3


@pytest.fixture
def operated(tmp_path: Path) -> Any:
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[[credentials]]\naccess_key_id = "{OPERATOR_KEY}"\n'
        f'secret_access_key = "{OPERATOR_SECRET}"\n'
    )
    relay = start_relay(tmp_path, config=config, args=["--admin", "127.0.0.1:0"])
    try:
        yield relay
    finally:
        stop_relay(relay.process)


def test_each_request_is_one_line_with_the_id_the_client_saw_and_no_secret(
    operated: RelayProcess,
) -> None:
    s3 = client_as(operated, OPERATOR_KEY, OPERATOR_SECRET)
    s3.create_bucket(Bucket="photos")
    put = s3.put_object(Bucket="photos", Key="cat.jpg", Body=b"meow")
    signed_id = put["ResponseMetadata"]["RequestId"]

    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "photos", "Key": "cat.jpg"}, ExpiresIn=300
    )
    signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", url)
    assert signature is not None
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"meow"
        presigned_id = answer.headers["x-amz-request-id"]

    forger = client_as(operated, OPERATOR_KEY, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        forger.get_object(Bucket="photos", Key="cat.jpg")
    refused_id = refused.value.response["ResponseMetadata"]["RequestId"]

    [put_line] = log_lines_with(operated, signed_id)
    assert f" {OPERATOR_KEY} PutObject photos/cat.jpg 200 - in=4 out=0 " in put_line
    [get_line] = log_lines_with(operated, presigned_id)
    assert f" {OPERATOR_KEY} GetObject photos/cat.jpg 200 - in=0 out=4 " in get_line
    [refused_line] = log_lines_with(operated, refused_id)
    assert f" {OPERATOR_KEY} GetObject photos/cat.jpg 403 SignatureDoesNotMatch " in refused_line
    assert 'reason="The request signature we calculated does not match' in refused_line

    log = operated.log_path.read_text()
    assert OPERATOR_SECRET not in log
    assert "not-the-secret" not in log
    assert signature.group(1) not in log
    assert "X-Amz-Signature" not in log
    assert "X-Amz-Credential" not in log
    assert "Signature=" not in log


def test_json_lines_are_one_object_per_request(tmp_path: Path) -> None:
    relay = start_relay(tmp_path, args=["--log-format", "json"])
    try:
        s3 = boto_client(relay)
        s3.create_bucket(Bucket="logged")
        request_id = s3.head_bucket(Bucket="logged")["ResponseMetadata"]["RequestId"]
        [line] = log_lines_with(relay, request_id)
        record = json.loads(line)
        assert record["operation"] == "HeadBucket"
        assert record["status"] == 200
        assert record["access_key"] == ACCESS_KEY
        assert record["remote"].startswith("127.0.0.1:")
    finally:
        stop_relay(relay.process)


def test_metrics_count_exactly_the_requests_made(operated: RelayProcess) -> None:
    admin = admin_endpoint(operated)
    s3 = client_as(operated, OPERATOR_KEY, OPERATOR_SECRET)
    s3.create_bucket(Bucket="counted")
    before = scrape(admin)
    for number in range(7):
        s3.put_object(Bucket="counted", Key=f"k{number}", Body=b"x" * 1000)
    for number in range(3):
        s3.get_object(Bucket="counted", Key=f"k{number}")["Body"].read()
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket="counted", Key="absent")
    after = scrape(admin)

    def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert requests_of(after, "PutObject", 200) - requests_of(before, "PutObject", 200) == 7
    assert requests_of(after, "GetObject", 200) - requests_of(before, "GetObject", 200) == 3
    assert requests_of(after, "GetObject", 404) - requests_of(before, "GetObject", 404) == 1
    assert moved("relay_received_bytes_total", (("operation", "PutObject"),)) == 7000
    assert moved("relay_sent_bytes_total", (("operation", "GetObject"),)) >= 3000
    assert moved("relay_request_duration_seconds_count", (("operation", "PutObject"),)) == 7
    assert moved("relay_commit_batch_size_sum") == 7  # each put committed once
    assert after[("relay_requests_in_flight", ())] == 0
    assert after[("relay_open_connections", ())] >= 1  # boto3 keeps its connection
    disk_puts = after.get(
        (
            "relay_blob_store_operations_total",
            (("backend", "disk"), ("operation", "put"), ("outcome", "ok")),
        ),
        0.0,
    )
    assert disk_puts >= 7
    assert after[("relay_cache_hits_total", (("cache", "manifest"),))] >= 0
    assert (("relay_info", (("version", after_version(after)),))) in after


def after_version(samples: dict[Any, float]) -> str:
    [version] = [dict(labels)["version"] for name, labels in samples if name == "relay_info"]
    return version


@pytest.mark.slow
def test_health_ready_follows_the_upstream_store(tmp_path: Path) -> None:
    (tmp_path / "moto").mkdir()
    moto = moto_or_skip(tmp_path / "moto")
    bucket = moto.new_bucket()
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[store]\nkind = "s3"\n[store.s3]\nendpoint = "{moto.endpoint}"\n'
        f'bucket = "{bucket}"\naccess_key_id = "{moto.access_key}"\n'
        f'secret_access_key = "{moto.secret_key}"\n'
        f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
    )
    (tmp_path / "relay").mkdir()
    relay = start_relay(tmp_path / "relay", config=config, args=["--admin", "127.0.0.1:0"])
    try:
        admin = admin_endpoint(relay)
        assert fetch(f"{admin}/health/live") == (200, b"live\n")
        assert fetch(f"{admin}/health/ready") == (200, b"ready\n")
        # The upstream stops answering (a hung host), then comes back.
        moto.process.send_signal(signal.SIGSTOP)
        try:
            status, reason = fetch(f"{admin}/health/ready")
        finally:
            moto.process.send_signal(signal.SIGCONT)
        assert status == 503
        assert reason == b"not ready: blob store: no answer within 5 s\n"
        assert fetch(f"{admin}/health/ready") == (200, b"ready\n")
        # The upstream goes away altogether: refused connections, after the store's retries.
        stop_moto(moto.process)
        status, reason = fetch(f"{admin}/health/ready")
        assert status == 503
        assert reason.startswith(b"not ready: blob store: ")
        assert fetch(f"{admin}/health/live")[0] == 200  # the process itself is fine
    finally:
        stop_relay(relay.process)
        stop_moto(moto.process)
