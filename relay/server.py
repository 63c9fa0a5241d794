"""Running relay: storage + the S3 application + the HTTP server, in the caller's nursery.

``serve(config)`` is the embedding API: a trio program runs relay with
``await nursery.start(serve, config)``, which returns the bound ``(host, port)`` once
relay accepts connections; setting the ``shutdown`` event (or cancelling) stops it
gracefully: no new connections, requests in flight get ``shutdown_grace_seconds``.

With ``[roundabout] listen`` set, the roundabout listener runs beside S3 over the same
registry, in the same nursery, stopped by the same ``shutdown`` event; it is accepting
before ``serve`` reports readiness, and ``roundabout_started`` gets its bound address.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from relay.bucket.multipart import Multipart
from relay.config import Config, parse_listen
from relay.credentials import Credentials, load_credentials
from relay.http import serve_http
from relay.roundabout.app import RoundaboutApp
from relay.s3.app import S3App
from relay.storage import open_storage


async def serve(
    config: Config,
    *,
    credentials: Credentials | None = None,
    shutdown: trio.Event | None = None,
    roundabout_started: Callable[[tuple[str, int]], object] | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    if credentials is None:
        credentials = await trio.to_thread.run_sync(
            load_credentials, config.credentials, config.data_dir
        )
    host, port = config.listen_address
    async with open_storage(config) as engine:
        app = S3App(
            engine, credentials.keys, region=config.region, multipart_uploads=Multipart(engine)
        )
        async with trio.open_nursery() as nursery:
            if config.roundabout.listen is not None:
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
            bound = await nursery.start(
                lambda task_status: serve_http(
                    app.handle,
                    host,
                    port,
                    config.http,
                    shutdown=shutdown,
                    busy_answer=app.busy_answer,
                    task_status=task_status,
                )
            )
            task_status.started(bound)
