"""Two relay hosts on one PostgreSQL registry and one shared s3 store (moto), each in a
namespace of its own, clients in another: the workload across both, then faults (kill -9
of one relay; a cut between one relay and PostgreSQL). Each needs a relay that accepts
``registry.url``; until then they skip, saying so."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from consistency import WRITE_KINDS, History, Operation, Report
from multihost_helpers import make_run, registry_url_or_skip
from netns import (
    Host,
    Network,
    PostgresHost,
    RelayHost,
    relay_config,
    s3_store_table,
    start_moto_in,
    start_postgres_in,
    start_relay_in,
    wait_until,
)

# How long a fault may take to show (a relay noticing PostgreSQL is gone goes by its own
# timeouts) and to heal; generous, for a loaded machine.
FAULT_TIMEOUT_SECONDS = 45.0
# A link cut drops packets silently (see tests/netns.py); "reject" would fail new
# connections at once instead.
CUT_HOW = "drop"
# Each relay host is several processes (two workers behind one port), each with its own
# writer for the bucket, and an admin listener for the commit figures.
ADMIN_PORT = 9090
RELAY_WORKERS = 2


@dataclass
class TwoHosts:
    network: Network
    database: PostgresHost
    store: Host
    relays: dict[str, RelayHost]
    clients: Host


@pytest.fixture
def two_hosts(request: pytest.FixtureRequest, tmp_path: Path) -> TwoHosts:
    registry_url_or_skip()
    network: Network = request.getfixturevalue("network")
    database = start_postgres_in(network.add_host("db"))
    store = network.add_host("store")
    moto = start_moto_in(store, tmp_path / "moto")
    bucket = store.call(moto.new_bucket)
    config = relay_config(store=s3_store_table(moto, bucket), registry_url=database.url)
    relays = {}
    for name in ("relay1", "relay2"):
        host = network.add_host(name)
        args = ("--workers", str(RELAY_WORKERS), "--admin", f"{host.address}:{ADMIN_PORT}")
        relays[name] = start_relay_in(host, tmp_path / name, config, args=args)
    return TwoHosts(network, database, store, relays, network.add_host("clients"))


def commit_figures(relay: RelayHost) -> dict[str, float]:
    """Server-side commit figures of one relay host (summed over its workers), from its
    admin listener's /metrics."""

    def scrape() -> str:
        connection = http.client.HTTPConnection(relay.host.address, ADMIN_PORT, timeout=10)
        try:
            connection.request("GET", "/metrics")
            return connection.getresponse().read().decode()
        finally:
            connection.close()

    totals: dict[str, float] = {}
    for line in relay.host.call(scrape).splitlines():
        for name in ("relay_commit_conflicts_total", "relay_commit_rebases_total"):
            if line.startswith(name):
                totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def acknowledged(history: History, predicate: Callable[[Operation], bool]) -> int:
    return sum(1 for op in list(history.operations) if op.acknowledged and predicate(op))


def assert_clean(report: Report) -> str:
    figures = "\n".join(report.lines())
    print(figures)
    assert report.violations == [], figures
    return figures


@pytest.mark.slow
def test_two_relay_hosts_keep_every_promise(two_hosts: TwoHosts) -> None:
    run = make_run(two_hosts.clients, two_hosts.relays, operations_per_client=40)
    run.create_bucket()
    run.workload()
    report = run.check(log_from="relay1")
    figures = assert_clean(report)
    # Two processes writing one bucket never fail a client.
    assert report.unanswered == 0, figures
    assert report.conflicts == 0, figures
    assert report.other_errors == 0, figures
    assert report.acknowledged["put_if_absent"] > 0, figures
    assert sum(report.refused.values()) > 0, figures
    for name, relay in two_hosts.relays.items():
        assert "Traceback" not in relay.log()
        # Each host's two workers and the other host's wrote one bucket at once: their
        # commits met in the registry (these are the retries no client saw).
        print(name, commit_figures(relay))


@pytest.mark.slow
def test_kill_9_of_one_relay_host_loses_nothing_and_the_other_serves(
    two_hosts: TwoHosts,
) -> None:
    run = make_run(two_hosts.clients, two_hosts.relays, operations_per_client=100_000)
    run.create_bucket()
    stop = threading.Event()
    join = run.in_background(stop)
    try:
        wait_until(
            lambda: acknowledged(run.history, lambda op: op.kind in WRITE_KINDS) >= 20,
            timeout=FAULT_TIMEOUT_SECONDS,
            what="writes before the kill",
        )
        killed_at = time.monotonic()
        two_hosts.relays["relay2"].process.kill()
        wait_until(
            lambda: (
                acknowledged(
                    run.history,
                    lambda op: (
                        op.host == "relay1" and op.kind in WRITE_KINDS and op.start > killed_at
                    ),
                )
                >= 20
            ),
            timeout=FAULT_TIMEOUT_SECONDS,
            what="relay1 serving writes after relay2's kill -9",
        )
    finally:
        join()
    report = run.check(final_hosts=["relay1"], log_from="relay1")
    assert_clean(report)


@pytest.mark.slow
def test_a_relay_cut_from_postgres_answers_503_and_heals_without_a_restart(
    two_hosts: TwoHosts,
) -> None:
    relay2 = two_hosts.relays["relay2"]
    run = make_run(two_hosts.clients, two_hosts.relays, operations_per_client=100_000)
    run.create_bucket()
    stop = threading.Event()
    join = run.in_background(stop)

    def writes_on(host: str, after: float, status: int | None = None) -> int:
        return sum(
            1
            for op in list(run.history.operations)
            if op.host == host
            and op.kind in WRITE_KINDS
            and op.start > after
            and (op.acknowledged if status is None else op.status == status)
        )

    try:
        wait_until(
            lambda: writes_on("relay2", 0) >= 10,
            timeout=FAULT_TIMEOUT_SECONDS,
            what="writes on relay2 before the cut",
        )
        cut_at = time.monotonic()
        two_hosts.network.cut(relay2.host, two_hosts.database.host, how=CUT_HOW)
        try:
            wait_until(
                lambda: writes_on("relay2", cut_at, 503) >= 1 and writes_on("relay1", cut_at) >= 20,
                timeout=FAULT_TIMEOUT_SECONDS,
                what="relay2 answering 503 while relay1 serves writes",
            )
        finally:
            restored_at = time.monotonic()
            two_hosts.network.restore(relay2.host, two_hosts.database.host)
        wait_until(
            lambda: writes_on("relay2", restored_at) >= 5,
            timeout=FAULT_TIMEOUT_SECONDS,
            what="relay2 serving writes again after the link is restored",
        )
    finally:
        join()
    report = run.check(log_from="relay1")
    figures = assert_clean(report)
    # While cut, relay2 acknowledged no PUT (it cannot commit one; a DELETE of a key it
    # holds absent may commit nothing), and nobody got a 500: the cut is a retryable 503.
    during = [
        op
        for op in run.history.operations
        if op.host == "relay2"
        and op.kind.startswith("put")
        and cut_at + 1 < op.start
        and op.end < restored_at
    ]
    assert not [op for op in during if op.acknowledged], figures
    assert not [op for op in run.history.operations if op.status == 500], figures
    assert relay2.process.poll() is None
