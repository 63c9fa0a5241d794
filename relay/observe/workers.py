"""The admin listener of ``relay serve --workers N``: the supervisor answers for all.

Each worker counts its own requests, commits and caches, and serves them on an admin
listener of its own on a loopback port only its supervisor knows. The supervisor serves
the configured ``admin.listen`` and, per scrape, asks every worker:

- ``/metrics``: every worker's exposition, each sample labelled ``worker="SLOT"``, in one
  document. Nothing is summed here: a worker that restarts starts its counters at zero,
  which Prometheus's ``rate()`` reads as a reset only per series; ``sum by (...)`` in a
  query adds the workers up (the dashboard's panels already sum). A worker that does not
  answer in time is left out of that scrape (its series go stale, as a dead process's do).
- ``/health/ready``: 200 only when every worker slot has a worker that is ready, so a load
  balancer takes the host out while one is restarting or its registry is unreachable;
  otherwise 503 naming each worker that is not and why.
- ``/health/live``: 200 while the supervisor answers (it restarts dead workers itself).

This is prometheus_client's "one scrape, several processes" done by asking the
processes, rather than its multiprocess mode (files in a shared directory), which cannot
carry the gauges relay computes at scrape time (caches, buffers, connections).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Final

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from relay.http import Request, RequestBody, Response
from relay.observe.metrics import CONTENT_TYPE

# A worker that does not answer a scrape or probe within this is counted out of it.
WORKER_ANSWER_TIMEOUT_SECONDS: Final = 5.0
# The most of a worker's answer read: an exposition is tens of KiB.
MAX_ANSWER_BYTES: Final = 16 << 20

# What the supervisor knows of a slot: the worker's admin port, or None when no worker
# serves it right now (starting, restarting).
Ports = Callable[[], Mapping[str, int | None]]


def merge_expositions(expositions: Mapping[str, str]) -> bytes:
    """One exposition holding every worker's samples, each labelled with its worker."""
    families: dict[str, Metric] = {}
    for worker, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                merged.samples.append(sample._replace(labels={**sample.labels, "worker": worker}))

    class Gathered:
        def collect(self) -> Iterator[Metric]:
            yield from families.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Gathered())
    return generate_latest(registry)


async def fetch(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` from a worker's admin listener on loopback: (status, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        received = bytearray()
        while data := await stream.receive_some(65536):
            received += data
            if len(received) > MAX_ANSWER_BYTES:
                raise ValueError("the worker's answer is too large")
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def _plain(status: int, text: str) -> Response:
    body = text.encode() + b"\n"
    return Response(
        status,
        [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")],
        body,
        content_length=len(body),
    )


class WorkersAdminApp:
    """``/metrics`` and ``/health/*`` for a supervisor and its workers (see above)."""

    def __init__(
        self,
        ports: Ports,
        ask: Callable[[int, str], Awaitable[tuple[int, bytes]]] = fetch,
    ) -> None:
        self._ports = ports
        self._ask = ask

    async def _ask_all(self, path: str) -> dict[str, tuple[int, bytes] | str]:
        """Each slot's answer to ``path``, or why there is none."""
        answers: dict[str, tuple[int, bytes] | str] = {}

        async def ask(worker: str, port: int) -> None:
            try:
                with trio.fail_after(WORKER_ANSWER_TIMEOUT_SECONDS):
                    answers[worker] = await self._ask(port, path)
            except trio.TooSlowError:
                answers[worker] = f"no answer within {WORKER_ANSWER_TIMEOUT_SECONDS:g} s"
            except (OSError, ValueError, IndexError) as exc:
                answers[worker] = f"unreachable ({type(exc).__name__})"

        async with trio.open_nursery() as nursery:
            for worker, port in self._ports().items():
                if port is None:
                    answers[worker] = "starting"
                else:
                    nursery.start_soon(ask, worker, port)
        return answers

    async def handle(self, request: Request, body: RequestBody) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "only GET and HEAD")
        if request.path == "/health/live":
            return _plain(200, "live")
        if request.path == "/health/ready":
            answers = await self._ask_all("/health/ready")
            failures = []
            for worker, answer in sorted(answers.items()):
                if isinstance(answer, str):
                    failures.append(f"worker {worker}: {answer}")
                elif answer[0] != 200:
                    failures.append(f"worker {worker}: {answer[1].decode(errors='replace')}")
            if failures:
                return _plain(503, "not ready: " + "; ".join(line.strip() for line in failures))
            return _plain(200, f"ready: {len(answers)} workers")
        if request.path == "/metrics":
            answers = await self._ask_all("/metrics")
            texts = {
                worker: answer[1].decode()
                for worker, answer in answers.items()
                if not isinstance(answer, str) and answer[0] == 200
            }
            exposition = await trio.to_thread.run_sync(merge_expositions, texts)
            return Response(
                200, [("content-type", CONTENT_TYPE)], exposition, content_length=len(exposition)
            )
        return _plain(404, "not found: try /metrics, /health/live or /health/ready")
