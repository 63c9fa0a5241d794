"""Slow clients cannot freeze a real ``relay serve``: fair uploads and the connection limit.

Slow uploads are raw sockets sending a presigned PUT's head and 1.5 MiB of a 10 MiB body,
then nothing: each leaves a partly filled chunk on the server. A normal 5 MiB PUT from
boto3 must still finish promptly, and a connection over the limit is answered 503
SlowDown at once instead of waiting in the kernel's backlog.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import ACCESS_KEY, SECRET_KEY, RelayProcess, boto_client, start_relay, stop_relay

pytestmark = pytest.mark.slow

MAX_CONNECTIONS = 30
SLOW_UPLOADS = MAX_CONNECTIONS - 10
SLOW_DECLARED = 10 << 20
SLOW_SENT = 3 << 19  # 1.5 MiB: one whole chunk and half of the next
NORMAL_SIZE = 5 << 20


def relay_with(tmp_path: Path, http_settings: str) -> RelayProcess:
    config = tmp_path / "relay.toml"
    config.write_text(
        f"[http]\n{http_settings}\n"
        f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n',
        encoding="utf-8",
    )
    return start_relay(tmp_path, config=config)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    process = relay_with(tmp_path, f"max_connections = {MAX_CONNECTIONS}")
    try:
        yield process
    finally:
        stop_relay(process.process)


def test_a_trickled_body_gets_request_timeout_and_nothing_is_stored(tmp_path: Path) -> None:
    # A short stall timeout keeps the test quick; the rule is the same at the defaults.
    relay = relay_with(tmp_path, "body_stall_timeout_seconds = 2\nbody_min_bytes_per_second = 1000")
    try:
        client = boto_client(relay)
        client.create_bucket(Bucket="trickle")
        url = client.generate_presigned_url("put_object", Params={"Bucket": "trickle", "Key": "k"})
        parts = urlsplit(url)
        with socket.create_connection((relay.host, relay.port), timeout=30) as sock:
            sock.sendall(
                f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Length: 1000000\r\n\r\n".encode()
                + b"x" * 5000
            )
            started = time.monotonic()
            answer = b""
            sock.settimeout(0.5)
            # Before: one byte every half second restarted the stall timer for ever.
            while time.monotonic() - started < 20 and b"\r\n\r\n" not in answer:
                try:
                    sock.sendall(b"x")
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
            waited = time.monotonic() - started
            sock.settimeout(5)
            while chunk := sock.recv(65536):  # the rest of the answer, then the close
                answer += chunk
        assert waited < 10  # before: answered only once the trickle stopped, after 20 s
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b"connection: close" in answer.lower()
        assert b"<Code>RequestTimeout</Code>" in answer
        assert b"Idle connections will be closed." in answer
        assert client.list_objects_v2(Bucket="trickle").get("KeyCount") == 0
    finally:
        stop_relay(relay.process)


def open_slow_upload(relay: RelayProcess, url: str) -> socket.socket:
    """A presigned PUT that declares 10 MiB, sends 1.5 MiB and stops."""
    parts = urlsplit(url)
    sock = socket.create_connection((relay.host, relay.port), timeout=10)
    head = (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Length: {SLOW_DECLARED}\r\n\r\n"
    ).encode()
    sock.sendall(head + os.urandom(SLOW_SENT))
    return sock


def test_a_normal_put_finishes_while_slow_uploads_hold_the_server(relay: RelayProcess) -> None:
    client = boto_client(relay, read_timeout=15, connect_timeout=5)
    client.create_bucket(Bucket="fair")
    slow = [
        open_slow_upload(
            relay,
            client.generate_presigned_url(
                "put_object", Params={"Bucket": "fair", "Key": f"slow-{index}"}
            ),
        )
        for index in range(SLOW_UPLOADS)
    ]
    try:
        time.sleep(1)  # every slow upload now sits on a partly filled chunk
        body = os.urandom(NORMAL_SIZE)
        started = time.monotonic()
        # Before: the pool's buffers were all held by the slow uploads and this waited for
        # their stall timer (60 s, restarted by every byte); boto3 gave up after 15 s.
        client.put_object(Bucket="fair", Key="normal", Body=body)
        assert time.monotonic() - started < 10
        assert client.get_object(Bucket="fair", Key="normal")["Body"].read() == body
        keys = [item["Key"] for item in client.list_objects_v2(Bucket="fair").get("Contents", [])]
        assert keys == ["normal"]  # nothing of a slow upload was committed

        client.close()  # its kept-alive connection would be shed to admit the next one

        # Fill the limit with connections that are busy (a head under way), so none is
        # idle to shed: a newcomer is answered 503 SlowDown at once. (Those over the limit
        # are answered 503 too; the loop does not read them.)
        busy = []
        for _ in range(MAX_CONNECTIONS + 5):
            sock = socket.create_connection((relay.host, relay.port), timeout=10)
            sock.sendall(b"GET /fair HTTP/1.1\r\n")
            busy.append(sock)
        time.sleep(0.5)
        try:
            refused_at = time.monotonic()
            with pytest.raises(ClientError) as refused:
                boto_client(relay, read_timeout=15).list_objects_v2(Bucket="fair")
            assert refused.value.response["Error"]["Code"] == "SlowDown"
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert time.monotonic() - refused_at < 5
        finally:
            for sock in busy:
                sock.close()
    finally:
        for sock in slow:
            sock.close()
