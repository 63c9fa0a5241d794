"""Browser form uploads against a real relay: botocore's presigned POST over a socket, and
a large form streamed with flat memory."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import RelayProcess

BOUNDARY = "relayformboundary0123456789"
MIB = 1 << 20


def form_head(fields: dict[str, str], filename: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    return "".join(parts).encode()


FORM_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


def post_form(
    relay: RelayProcess, bucket: str, head: bytes, pieces: Iterator[bytes], size: int
) -> tuple[int, bytes, dict[str, str]]:
    """POST a form whose file is ``pieces`` (``size`` bytes), streamed from a generator."""
    connection = http.client.HTTPConnection(relay.host, relay.port, timeout=300)
    try:
        connection.putrequest("POST", f"/{bucket}")
        connection.putheader("content-type", f"multipart/form-data; boundary={BOUNDARY}")
        connection.putheader("content-length", str(len(head) + size + len(FORM_TAIL)))
        connection.endheaders()
        connection.send(head)
        for piece in pieces:
            connection.send(piece)
        connection.send(FORM_TAIL)
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_botocores_presigned_post_stores_the_file(
    relay_server: RelayProcess, client: Any, bucket: str
) -> None:
    post = client.generate_presigned_post(
        bucket, "in/${filename}", Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}], ExpiresIn=300,
    )  # fmt: skip
    data = b"through a socket" * 1000
    status, body, headers = post_form(
        relay_server, bucket, form_head(post["fields"], "s.bin"), iter([data]), len(data)
    )
    assert status == 201, body
    assert b"<Key>in/s.bin</Key>" in body
    assert headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert client.get_object(Bucket=bucket, Key="in/s.bin")["Body"].read() == data


@pytest.mark.slow
def test_a_large_form_is_streamed_with_flat_memory(
    relay_server: RelayProcess, client: Any, bucket: str
) -> None:
    size = 512 * MIB
    post = client.generate_presigned_post(bucket, "large.bin", ExpiresIn=600)
    piece = bytes(range(256)) * (4 * MIB // 256)
    digest = hashlib.md5()

    def pieces() -> Iterator[bytes]:
        for _ in range(size // len(piece)):
            digest.update(piece)
            yield piece

    # A warm-up upload first, so the peak measured is the form's, not start-up's.
    warm = client.generate_presigned_post(bucket, "warm.bin", ExpiresIn=600)
    post_form(relay_server, bucket, form_head(warm["fields"], "w"), iter([piece]), len(piece))
    before = peak_rss_bytes(relay_server.process.pid)
    status, body, headers = post_form(
        relay_server, bucket, form_head(post["fields"], "large.bin"), pieces(), size
    )
    grown = peak_rss_bytes(relay_server.process.pid) - before
    assert status == 204, body
    assert headers["etag"] == f'"{digest.hexdigest()}"'
    assert client.head_object(Bucket=bucket, Key="large.bin")["ContentLength"] == size
    print(f"peak RSS grew {grown / MIB:.1f} MiB over a {size // MIB} MiB form upload")
    # The upload pool (12 MiB) and the read buffers, never the body: far below its size.
    assert grown < 96 * MIB
