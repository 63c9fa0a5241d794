"""Stopping relay through the embedding API (``relay serve``'s SIGTERM is in
tests/test_serve.py).

A graceful stop lets requests in flight finish and does not wait for idle keep-alive
connections (a client pool may hold them open for minutes).
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path

import trio
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY

from relay.config import load_config
from relay.credentials import Credentials
from relay.server import serve

MiB = 1 << 20
STOP_SECONDS = 10.0


def signed_head(endpoint: str, method: str, path: str, body: bytes) -> bytes:
    request = AWSRequest(method=method, url=endpoint + path, data=body)
    S3SigV4Auth(BotoCredentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    host = endpoint.removeprefix("http://")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def receive_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = await stream.receive_some(65536)
        if not piece:
            break
        data += piece
    return data


async def start_embedded(
    nursery: trio.Nursery, data_dir: Path, shutdown: trio.Event
) -> tuple[str, int]:
    config = load_config(data_dir=data_dir, listen="127.0.0.1:0", environ={})
    credentials = Credentials({ACCESS_KEY: SECRET_KEY})
    bound: tuple[str, int] = await nursery.start(
        partial(serve, config, credentials=credentials, shutdown=shutdown)
    )
    return bound


async def test_graceful_stop_does_not_wait_for_idle_keepalive_connections(
    tmp_path: Path,
) -> None:
    shutdown = trio.Event()
    with trio.fail_after(STOP_SECONDS):
        async with trio.open_nursery() as nursery:
            host, port = await start_embedded(nursery, tmp_path / "data", shutdown)
            endpoint = f"http://{host}:{port}"
            stream = await trio.open_tcp_stream(host, port)
            await stream.send_all(signed_head(endpoint, "PUT", "/idle-bucket", b""))
            head = await receive_head(stream)
            assert head.startswith(b"HTTP/1.1 200"), head
            shutdown.set()  # the connection is idle, between requests
        # serve() returned well before the 30 s grace period
        await stream.aclose()


async def test_graceful_stop_lets_an_upload_in_flight_finish(tmp_path: Path) -> None:
    shutdown = trio.Event()
    body = os.urandom(4 * MiB)
    with trio.fail_after(STOP_SECONDS):
        async with trio.open_nursery() as nursery:
            host, port = await start_embedded(nursery, tmp_path / "data", shutdown)
            endpoint = f"http://{host}:{port}"
            async with await trio.open_tcp_stream(host, port) as stream:
                await stream.send_all(signed_head(endpoint, "PUT", "/grace", b""))
                assert (await receive_head(stream)).startswith(b"HTTP/1.1 200")
            async with await trio.open_tcp_stream(host, port) as stream:
                await stream.send_all(signed_head(endpoint, "PUT", "/grace/k", body))
                await stream.send_all(body[:MiB])
                await trio.sleep(0.2)
                shutdown.set()
                await trio.sleep(0.2)
                await stream.send_all(body[MiB:])
                head = await receive_head(stream)
                assert head.startswith(b"HTTP/1.1 200"), head
                assert f'"{hashlib.md5(body).hexdigest()}"'.encode() in head
    # Started again on the same data, relay serves what it acknowledged.
    shutdown = trio.Event()
    with trio.fail_after(STOP_SECONDS):
        async with trio.open_nursery() as nursery:
            host, port = await start_embedded(nursery, tmp_path / "data", shutdown)
            endpoint = f"http://{host}:{port}"
            async with await trio.open_tcp_stream(host, port) as stream:
                await stream.send_all(signed_head(endpoint, "GET", "/grace/k", b""))
                received = await receive_head(stream)
                head, _, got = received.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                while len(got) < len(body):
                    piece = await stream.receive_some(MiB)
                    assert piece
                    got += piece
                assert got == body
            shutdown.set()
