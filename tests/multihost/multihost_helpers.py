"""Running the workload from the clients' host against relay hosts, and checking it."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from consistency import (
    CommitEntry,
    History,
    Plan,
    Report,
    check,
    final_reads,
    run_workload,
    s3_client,
)
from netns import Host, RelayHost, join_namespace, relay_commit_log

from relay.config import ConfigError, load_config

BUCKET = "shared"


def registry_url_or_skip() -> None:
    """Skip unless this relay accepts ``registry.url`` (the PostgreSQL registry)."""
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "probe.toml"
        config.write_text(
            '[registry]\nurl = "postgresql://postgres@127.0.0.1:5432/postgres"\n'
            '[store]\nkind = "s3"\n[store.s3]\nendpoint = "http://127.0.0.1:5000"\n'
            'bucket = "b"\naccess_key_id = "a"\nsecret_access_key = "s"\n'
        )
        try:
            load_config(config, environ={})
        except ConfigError as exc:
            if "registry" in str(exc):
                pytest.skip(f"needs registry.url (PostgreSQL registry): {exc}")
            raise


@dataclass
class Run:
    """A workload over ``relays`` from the ``clients`` host, then its check."""

    clients: Host
    relays: dict[str, RelayHost]
    plan: Plan
    history: History

    def create_bucket(self) -> None:
        def create() -> None:
            first = next(iter(self.plan.endpoints.values()))
            s3_client(first).create_bucket(Bucket=self.plan.bucket)

        self.clients.call(create)

    def workload(self, stop: threading.Event | None = None) -> None:
        namespace = self.clients.namespace
        run_workload(self.plan, self.history, enter=lambda: join_namespace(namespace), stop=stop)

    def in_background(self, stop: threading.Event) -> Callable[[], None]:
        """Start the workload on a thread; the returned function joins it (and raises
        what it raised)."""
        failures: list[BaseException] = []

        def work() -> None:
            try:
                self.workload(stop)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=work, name="workload")
        thread.start()

        def join() -> None:
            stop.set()
            thread.join()
            if failures:
                raise failures[0]

        return join

    def check(self, *, final_hosts: Sequence[str] | None = None, log_from: str) -> Report:
        """Final reads on ``final_hosts`` (default: all), the commit log read through the
        relay ``log_from`` in its host, and the checker's report."""
        self.clients.call(final_reads, self.plan, self.history, final_hosts)
        relay = self.relays[log_from]
        log = relay_commit_log(relay.host, relay, self.plan.bucket)
        entries = [CommitEntry(line.version, line.root, line.parent) for line in log]
        return check(self.history.operations, entries)


def make_run(clients: Host, relays: dict[str, RelayHost], **plan: object) -> Run:
    endpoints = {name: relay.endpoint for name, relay in relays.items()}
    return Run(clients, relays, Plan(endpoints, BUCKET, **plan), History())  # type: ignore[arg-type]
