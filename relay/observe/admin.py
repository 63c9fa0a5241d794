"""The admin listener: ``/metrics``, ``/health/live`` and ``/health/ready``, no auth.

Meant for an operator's network (Prometheus, a load balancer, an orchestrator's probes),
on its own address (``admin.listen``), never the S3 port: it answers anyone who can reach
it, and says nothing secret (figures, and the reason a dependency is not ready).

- ``/health/live``: 200 whenever the process's event loop answers.
- ``/health/ready``: 200 when every readiness check passes within
  ``READY_CHECK_TIMEOUT_SECONDS``; otherwise 503 naming each failing check and why, so a
  load balancer takes the instance out until its registry or blob store is back.
- ``/metrics``: Prometheus's text format (``relay.observe.metrics``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio

from relay.http import Request, RequestBody, Response
from relay.observe.metrics import CONTENT_TYPE, Metrics

READY_CHECK_TIMEOUT_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """``check`` returns when ``name`` (the registry, the blob store) is usable, or raises."""

    name: str
    check: Callable[[], Awaitable[object]]


def _plain(status: int, text: str) -> Response:
    body = text.encode() + b"\n"
    return Response(
        status,
        [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")],
        body,
        content_length=len(body),
    )


async def _failure(check: ReadinessCheck) -> str | None:
    """Why ``check`` failed, or None if it passed in time."""
    try:
        with trio.fail_after(READY_CHECK_TIMEOUT_SECONDS):
            await check.check()
    except trio.TooSlowError:
        return f"{check.name}: no answer within {READY_CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"{check.name}: {reason[:300]}"
    return None


class AdminApp:
    def __init__(self, metrics: Metrics, checks: Sequence[ReadinessCheck] = ()) -> None:
        self._metrics = metrics
        self._checks = tuple(checks)

    async def handle(self, request: Request, body: RequestBody) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "only GET and HEAD")
        if request.path == "/health/live":
            return _plain(200, "live")
        if request.path == "/health/ready":
            failures: list[str] = []

            async def run(check: ReadinessCheck) -> None:
                failure = await _failure(check)
                if failure is not None:
                    failures.append(failure)

            async with trio.open_nursery() as nursery:
                for check in self._checks:
                    nursery.start_soon(run, check)
            if failures:
                return _plain(503, "not ready: " + "; ".join(sorted(failures)))
            return _plain(200, "ready")
        if request.path == "/metrics":
            exposition = await trio.to_thread.run_sync(self._metrics.exposition)
            return Response(
                200, [("content-type", CONTENT_TYPE)], exposition, content_length=len(exposition)
            )
        return _plain(404, "not found: try /metrics, /health/live or /health/ready")
