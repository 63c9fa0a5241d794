"""`serve` collects garbage in the background, in its own nursery."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import pytest
import trio

from relay.config import load_config
from relay.credentials import Credentials
from relay.server import serve


async def test_serve_collects_garbage_every_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        data_dir=tmp_path / "data",
        listen="127.0.0.1:0",
        environ={
            "RELAY_STORE": "memory",
            "RELAY_GC_INTERVAL_SECONDS": "0.05",
            "RELAY_GC_GRACE_SECONDS": "0",
        },
    )
    caplog.set_level(logging.INFO, logger="relay.gc")
    credentials = Credentials(keys={"test": "test"})
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, config, credentials=credentials))
        with trio.fail_after(30):
            while not any(r.name == "relay.gc" for r in caplog.records):  # noqa: ASYNC110
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert "garbage collection:" in caplog.text


async def test_a_graceful_shutdown_ends_the_background_collection(tmp_path: Path) -> None:
    # The default interval (an hour): the collector is asleep when shutdown comes.
    config = load_config(
        data_dir=tmp_path / "data", listen="127.0.0.1:0", environ={"RELAY_STORE": "memory"}
    )
    shutdown = trio.Event()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(serve, config, credentials=Credentials(keys={"t": "t"}), shutdown=shutdown)
            )
            shutdown.set()
        # serve returned by itself: the nursery closed without a cancel.
