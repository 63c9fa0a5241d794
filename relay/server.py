"""Running relay: storage + the S3 application + the HTTP server, in the caller's nursery.

``serve(config)`` is the embedding API: a trio program runs relay with
``await nursery.start(serve, config)``, which returns the bound ``(host, port)`` once
relay accepts connections; setting the ``shutdown`` event (or cancelling) stops it
gracefully: no new connections, requests in flight get ``shutdown_grace_seconds``.

With ``[roundabout] listen`` set, the roundabout listener runs beside S3 over the same
registry, in the same nursery, stopped by the same ``shutdown`` event; it is accepting
before ``serve`` reports readiness, and ``roundabout_started`` gets its bound address.

What an operator sees (``relay.observe``): every S3 request answered or refused is one
line on the ``relay.access`` logger (written only when its level allows, so
``log.level = "warning"`` costs nothing per request). With ``admin.listen`` set, a third
listener serves ``/metrics`` and ``/health/*``; request and blob store figures are
counted only then, since nothing could read them otherwise.

``sockets`` hands ``serve`` listening sockets that are already bound (a worker of
``relay serve --workers N`` inherits them from its supervisor, ``relay.workers``) instead
of binding ``listen`` and ``roundabout.listen`` itself; ``worker`` then names this process
in each request line.
Garbage collection (``relay.bucket.gc``) runs in the same nursery every
``gc.interval_seconds`` (unless 0), at ``gc.operations_per_second``, and so does the disk
store's scrub; with workers, only worker 1 runs them, and each other worker only reclaims
space at that interval (so its own pack in progress, once mostly garbage, is compacted).
Collection sees this process's writes in flight, and the grace protects everyone else's
(other workers' included).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

import trio

from relay.bucket import Engine, Multipart, serve_gc
from relay.config import Config, parse_listen
from relay.credentials import Credentials, load_credentials
from relay.http import Exchange, HttpActivity, serve_http, serve_http_listeners
from relay.observe import RequestLog, record_of
from relay.observe.requests import ACCESS_LOGGER
from relay.roundabout.app import RoundaboutApp
from relay.s3.app import S3App
from relay.storage import open_storage
from relay.store.base import BlobStore
from relay.store.scrub import ScrubbableStore, serve_scrub

# A blob no one stores: asking the store whether it has it reaches the store (an upstream
# HEAD for s3) without depending on any content.
_READINESS_PROBE = bytes.fromhex("1220") + bytes(32)


if TYPE_CHECKING:
    from relay.observe.metrics import Metrics, Readings


@dataclass(frozen=True, slots=True)
class ListenSockets:
    """Listening sockets bound by someone else: S3's, and roundabout's if it is on."""

    s3: socket.socket
    roundabout: socket.socket | None = None


def _listener(sock: socket.socket) -> trio.SocketListener:
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


def _address(sock: socket.socket) -> tuple[str, int]:
    bound = sock.getsockname()
    return (str(bound[0]), int(bound[1]))


def _readings(engine: Engine, activity: HttpActivity) -> Readings:
    from relay.observe.metrics import CacheReading, Readings

    statistics = engine.statistics()
    buffers = engine.buffers.statistics()
    return Readings(
        open_connections=activity.open_connections,
        requests_in_flight=activity.requests_in_flight,
        commit_batches=statistics.commit_batches,
        commit_mutations=statistics.commit_mutations,
        commit_seconds=statistics.commit_seconds,
        commit_conflicts=statistics.commit_conflicts,
        commit_rebases=statistics.commit_rebases,
        upload_buffers_in_use=buffers.in_use,
        upload_buffers_capacity=buffers.capacity,
        upload_spilled_bytes=buffers.spilled_bytes,
        upload_spills=buffers.spills,
        upload_evictions=buffers.evictions,
        caches={
            name: CacheReading(hits, misses, memory)
            for name, (hits, misses, memory) in engine.blocks.cache_figures().items()
        },
    )


async def _scrub_until(
    shutdown: trio.Event | None, store: ScrubbableStore, bytes_per_second: int
) -> None:
    """The background scrub (``relay.store.scrub``), stopped with the server."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_scrub, store, bytes_per_second)
        if shutdown is not None:
            await shutdown.wait()
            nursery.cancel_scope.cancel()


async def serve(
    config: Config,
    *,
    credentials: Credentials | None = None,
    shutdown: trio.Event | None = None,
    roundabout_started: Callable[[tuple[str, int]], object] | None = None,
    admin_started: Callable[[tuple[str, int]], object] | None = None,
    sockets: ListenSockets | None = None,
    worker: str = "",
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    if credentials is None:
        credentials = await trio.to_thread.run_sync(
            load_credentials, config.credentials, config.data_dir
        )
    host, port = config.listen_address
    activity = HttpActivity()
    metrics: Metrics | None = None
    wrap_store: Callable[[BlobStore], BlobStore] | None = None
    if config.admin_listen is not None:
        from relay.observe.metrics import Metrics
        from relay.observe.store import InstrumentedStore

        metrics = Metrics()
        counted = metrics

        def wrap_store(store: BlobStore) -> BlobStore:
            return InstrumentedStore(store, config.store.kind, counted)

    request_log = RequestLog("json" if config.log.format == "json" else "text", worker=worker)
    logs_requests = logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)

    def observe(exchange: Exchange) -> None:
        if metrics is None and not logs_requests:
            return
        record = record_of(exchange)
        if logs_requests:
            request_log.write(record)
        if metrics is not None:
            metrics.observe_request(record)

    async with open_storage(config, wrap_store=wrap_store) as engine:
        app = S3App(
            engine,
            credentials.keys,
            region=config.region,
            multipart_uploads=Multipart(engine),
            domains=config.domains,
        )
        # One process per host keeps the store: with workers, only the first collects
        # garbage and scrubs (N collectors would each walk every root and list every blob);
        # the others only hand their own packs in progress over to compaction.
        keeps_the_store = worker in ("", "1")
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(serve_gc, engine, config.gc, collects=keeps_the_store, shutdown=shutdown)
            )
            if metrics is not None and config.admin_listen is not None:
                from relay.observe.admin import AdminApp, ReadinessCheck

                metrics.read = partial(_readings, engine, activity)
                admin = AdminApp(
                    metrics,
                    [
                        ReadinessCheck("registry", engine.registry.ping),
                        ReadinessCheck("blob store", partial(engine.store.has, _READINESS_PROBE)),
                    ],
                )
                admin_host, admin_port = parse_listen(config.admin_listen)
                admin_bound = await nursery.start(
                    partial(
                        serve_http, admin.handle, admin_host, admin_port, config.http,
                        shutdown=shutdown,
                    )
                )  # fmt: skip
                if admin_started is not None:
                    admin_started(admin_bound)
            if sockets is not None and sockets.roundabout is not None:
                roundabout = RoundaboutApp(engine.registry, config.roundabout, credentials.keys)
                await nursery.start(
                    partial(
                        serve_http_listeners, roundabout.handle,
                        [_listener(sockets.roundabout)], config.http, shutdown=shutdown,
                    )
                )  # fmt: skip
                if roundabout_started is not None:
                    roundabout_started(_address(sockets.roundabout))
            elif config.roundabout.listen is not None:
                roundabout_host, roundabout_port = parse_listen(config.roundabout.listen)
                roundabout = RoundaboutApp(engine.registry, config.roundabout, credentials.keys)
                roundabout_bound = await nursery.start(
                    lambda task_status: serve_http(
                        roundabout.handle,
                        roundabout_host,
                        roundabout_port,
                        config.http,
                        shutdown=shutdown,
                        task_status=task_status,
                    )
                )
                if roundabout_started is not None:
                    roundabout_started(roundabout_bound)
            if (
                keeps_the_store
                and config.gc.scrub_bytes_per_second > 0
                and hasattr(engine.store, "list_blobs")
            ):
                scrubbed = cast("ScrubbableStore", engine.store)  # a store that lists blobs
                nursery.start_soon(
                    _scrub_until, shutdown, scrubbed, config.gc.scrub_bytes_per_second
                )
            if sockets is not None:
                await nursery.start(
                    partial(
                        serve_http_listeners,
                        app.handle,
                        [_listener(sockets.s3)],
                        config.http,
                        shutdown=shutdown,
                        busy_answer=app.busy_answer,
                        observer=observe,
                        activity=activity,
                    )
                )
                task_status.started(_address(sockets.s3))
                return
            bound = await nursery.start(
                lambda task_status: serve_http(
                    app.handle,
                    host,
                    port,
                    config.http,
                    shutdown=shutdown,
                    busy_answer=app.busy_answer,
                    observer=observe,
                    activity=activity,
                    task_status=task_status,
                )
            )
            task_status.started(bound)
