"""Slow clients against one relay: does a normal upload still get through?

Run: ``.venv/bin/python -m bench.slow_clients [--max-connections N] [--rounds R]``

Starts ``relay serve`` with ``http.max_connections = N`` (default 64), times a normal
5 MiB PUT (boto3, median of R rounds) on the idle server, then opens ``N - 10`` slow
uploads (raw sockets: a presigned PUT declaring 10 MiB, 1.5 MiB sent at once, then one
byte every 5 s, as the adversarial report had it) and times the same PUT again. The
target: loaded at most 2 × unloaded. Also reports the server's peak RSS and what became
of the slow uploads. Writes bench/results/slow_clients.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig

from bench.common import median, save, table
from bench.peers import MIB, PEERS, RELAY_KEYS, Server

SLOW_DECLARED = 10 * MIB
SLOW_SENT = 3 * MIB // 2
TRICKLE_INTERVAL_SECONDS = 5.0
NORMAL_SIZE = 5 * MIB


def _client(server: Server) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.peer.access_key,
        aws_secret_access_key=server.peer.secret_key,
        region_name="us-east-1",
        config=BotoConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            read_timeout=120,
        ),
    )


def _timed_puts(client: Any, rounds: int) -> list[float]:
    times = []
    for index in range(rounds):
        body = os.urandom(NORMAL_SIZE)  # fresh bytes: no chunk is already stored
        started = time.perf_counter()
        client.put_object(Bucket="bench", Key=f"normal-{index}", Body=body)
        times.append(time.perf_counter() - started)
    return times


class SlowUploads:
    """Raw sockets holding presigned PUTs open: 1.5 MiB, then a byte every 5 s."""

    def __init__(self, server: Server, client: Any, count: int) -> None:
        self.sockets: list[socket.socket] = []
        payload = os.urandom(SLOW_SENT)
        for index in range(count):
            url = client.generate_presigned_url(
                "put_object", Params={"Bucket": "bench", "Key": f"slow-{index}"}
            )
            parts = urlsplit(url)
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            head = (
                f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Length: {SLOW_DECLARED}\r\n\r\n"
            ).encode()
            sock.sendall(head + payload)
            self.sockets.append(sock)
        self._stop = threading.Event()
        self._trickler = threading.Thread(target=self._trickle, daemon=True)
        self._trickler.start()

    def _trickle(self) -> None:
        while not self._stop.wait(TRICKLE_INTERVAL_SECONDS):
            for sock in self.sockets:
                try:
                    sock.send(b"x")
                except OSError:
                    pass  # the server ended it (evicted, or too slow)

    def answered(self) -> dict[str, int]:
        """How many slow uploads the server has answered, by status line."""
        counts: dict[str, int] = {}
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                data = sock.recv(256)
            except BlockingIOError:
                status = "still open"
            except OSError:
                status = "reset"
            else:
                status = data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
            counts[status] = counts.get(status, 0) + 1
        return counts

    def close(self) -> None:
        self._stop.set()
        for sock in self.sockets:
            sock.close()


def _wait_until_quiet(server: Server, timeout_seconds: float = 300.0) -> None:
    """Until the server spends under 5% of a core: the slow uploads' bursts are stored,
    and what is left is slow clients holding connections open."""
    deadline = time.monotonic() + timeout_seconds
    before = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        after = server.cpu_seconds()
        if after - before < 0.025:
            return
        before = after
    raise RuntimeError(f"the server was still busy after {timeout_seconds} s")


def run(max_connections: int, rounds: int) -> dict[str, Any]:
    peer = replace(
        PEERS["relay"],
        extra_env=RELAY_KEYS | {"RELAY_HTTP_MAX_CONNECTIONS": str(max_connections)},
    )
    with tempfile.TemporaryDirectory(prefix="relay-slow-clients-") as workdir:
        server = Server(peer, Path(workdir))
        try:
            client = _client(server)
            client.create_bucket(Bucket="bench")
            _timed_puts(client, 1)  # warm up: imports, first buffers
            unloaded = _timed_puts(client, rounds)
            opened_at = time.perf_counter()
            slow = SlowUploads(server, client, max_connections - 10)
            try:
                _wait_until_quiet(server)  # every slow upload's 1.5 MiB is absorbed
                absorbed = time.perf_counter() - opened_at
                absorbed_rss = server.peak_rss_mib()
                print(f"slow uploads absorbed in {absorbed:.1f} s; peak RSS {absorbed_rss:.0f} MiB")
                loaded = _timed_puts(client, rounds)
                fates = slow.answered()
            finally:
                slow.close()
            peak_rss = server.peak_rss_mib()
        except BaseException:
            print(server.log_tail(40))
            raise
        finally:
            server.stop()
    return {
        "max_connections": max_connections,
        "slow_uploads": max_connections - 10,
        "rounds": rounds,
        "unloaded_seconds": unloaded,
        "loaded_seconds": loaded,
        "unloaded_median_seconds": median(unloaded),
        "loaded_median_seconds": median(loaded),
        "ratio": median(loaded) / median(unloaded),
        "slow_uploads_absorbed_seconds": absorbed,
        "server_peak_rss_mib": peak_rss,
        "server_peak_rss_when_absorbed_mib": absorbed_rss,
        "slow_upload_fates": fates,
    }


def _random_file(path: Path, size: int) -> Path:
    """``size`` random bytes (whole MiB) at ``path``, written a MiB at a time."""
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
    return path


def run_fast(count: int, size: int) -> dict[str, Any]:
    """`count` concurrent PUTs of `size` bytes each (from one file): the server's peak RSS,
    to check that fair uploads cost fast ones no memory."""
    with tempfile.TemporaryDirectory(prefix="relay-fast-uploads-") as workdir:
        source = _random_file(Path(workdir) / "body", size)
        server = Server(PEERS["relay"], Path(workdir))
        try:
            client = _client(server)
            client.create_bucket(Bucket="bench")
            errors: list[BaseException] = []

            def upload(index: int) -> None:
                try:
                    with source.open("rb") as body:
                        client.put_object(Bucket="bench", Key=f"fast-{index}", Body=body)
                except BaseException as exc:
                    errors.append(exc)

            started = time.perf_counter()
            threads = [threading.Thread(target=upload, args=(i,)) for i in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            if errors:
                raise errors[0]
            peak_rss = server.peak_rss_mib()
        finally:
            server.stop()
    return {
        "fast_uploads": count,
        "fast_size_mib": size // MIB,
        "fast_seconds": elapsed,
        "fast_mb_per_second": count * size / 1e6 / elapsed,
        "fast_server_peak_rss_mib": peak_rss,
    }


def run_curl(size: int, rounds: int) -> dict[str, Any]:
    """One PUT of `size` bytes at a time from curl (a fast C client): MB/s per round."""
    with tempfile.TemporaryDirectory(prefix="relay-curl-") as workdir:
        source = _random_file(Path(workdir) / "body", size)
        server = Server(PEERS["relay"], Path(workdir))
        try:
            client = _client(server)
            client.create_bucket(Bucket="bench")
            rates = []
            for index in range(rounds):
                url = client.generate_presigned_url(
                    "put_object", Params={"Bucket": "bench", "Key": f"curl-{index}"}
                )
                started = time.perf_counter()
                subprocess.run(
                    ["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(source), url], check=True
                )
                rates.append(size / 1e6 / (time.perf_counter() - started))
            peak_rss = server.peak_rss_mib()
        finally:
            server.stop()
    return {"curl_size_mib": size // MIB, "curl_mb_per_second": rates, "peak_rss_mib": peak_rss}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--fast-uploads",
        type=int,
        default=0,
        help="instead: this many concurrent fast PUTs, reporting the server's peak RSS",
    )
    parser.add_argument("--fast-size-mib", type=int, default=256)
    parser.add_argument(
        "--curl-put-mib",
        type=int,
        default=0,
        help="instead: PUTs of this many MiB from curl, one at a time, --rounds of them",
    )
    args = parser.parse_args(argv)
    if args.curl_put_mib:
        curl = run_curl(args.curl_put_mib * MIB, args.rounds)
        print(curl)
        print(f"wrote {save('curl_put', curl)}")
        return
    if args.fast_uploads:
        fast = run_fast(args.fast_uploads, args.fast_size_mib * MIB)
        print(table([(name, f"{value:.1f}") for name, value in fast.items()]))
        print(f"wrote {save('fast_uploads', fast)}")
        return
    if args.max_connections <= 10:
        parser.error("--max-connections must be above 10")
    result = run(args.max_connections, args.rounds)
    path = save("slow_clients", result)
    print(
        table(
            [
                ("slow uploads open", str(result["slow_uploads"])),
                ("5 MiB PUT, unloaded (median)", f"{result['unloaded_median_seconds']:.3f} s"),
                ("5 MiB PUT, loaded (median)", f"{result['loaded_median_seconds']:.3f} s"),
                ("loaded / unloaded", f"{result['ratio']:.2f} (target <= 2)"),
                ("slow uploads absorbed in", f"{result['slow_uploads_absorbed_seconds']:.1f} s"),
                ("server peak RSS", f"{result['server_peak_rss_mib']:.0f} MiB"),
                ("slow uploads", str(result["slow_upload_fates"])),
            ]
        )
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
